// A loopback HTTP server that records each request's method, path and Authorization and answers
// with a canned JSON body: where a cloud API has no emulator here (BigQuery, Azure OpenAI,
// Cosmos DB), it shows which bearer token the real client library sent.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";

export interface Recorder {
  url: string;
  seen: { method: string; path: string; authorization: string }[];
  close(): Promise<void>;
}

export async function startRecorder(
  answer: (method: string, path: string) => { status?: number; body: unknown; headers?: Record<string, string> },
  tls?: { cert: string; key: string },
): Promise<Recorder> {
  const seen: Recorder["seen"] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    req.on("end", () => {
      seen.push({ method: req.method ?? "", path: req.url ?? "", authorization: String(req.headers.authorization ?? "") });
      const { status = 200, body, headers = {} } = answer(req.method ?? "", req.url ?? "");
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    });
  };
  const server = tls ? https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `${tls ? "https" : "http"}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
