// Setting up state before a measurement (never measuring): a fixed number of requests, sent over
// a few keep-alive connections, each one checked. Used to put entries into L2 through the
// bridge's API and to load L1 through the sidecar.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

export interface Outgoing {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/**
 * Sends request(0) … request(count − 1), `concurrency` at a time; rejects on the first answer
 * whose status is not `expectStatus` (and on a header check, if given).
 */
export async function sendAll(options: {
  baseUrl: string;
  count: number;
  request: (index: number) => Outgoing;
  expectStatus: number;
  expectHeader?: [name: string, value: string];
  concurrency?: number;
  /** For an https:// base URL (the bridge): the client certificate, its key and the CA (PEM files). */
  tls?: { cert: string; key: string; ca: string };
}): Promise<void> {
  const target = new URL(options.baseUrl);
  const maxSockets = options.concurrency ?? 16;
  const agent =
    target.protocol === "https:"
      ? new https.Agent({
          keepAlive: true,
          maxSockets,
          ...(options.tls ? { cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key), ca: readFileSync(options.tls.ca) } : {}),
        })
      : new http.Agent({ keepAlive: true, maxSockets });
  let next = 0;
  const worker = async () => {
    while (next < options.count) {
      const index = next++;
      const outgoing = options.request(index);
      const answer = await send(agent, target, outgoing);
      const [headerName, headerValue] = options.expectHeader ?? [];
      if (answer.status !== options.expectStatus || (headerName && answer.headers[headerName] !== headerValue)) {
        throw new Error(
          `${outgoing.method} ${outgoing.path} answered ${answer.status}` +
            `${headerName ? ` ${headerName}: ${answer.headers[headerName]}` : ""}: ${answer.body.slice(0, 200)}`,
        );
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  } finally {
    agent.destroy();
  }
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(agent: http.Agent, target: URL, outgoing: Outgoing): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = (target.protocol === "https:" ? https : http).request(
      { agent, host: target.hostname, port: target.port, method: outgoing.method, path: outgoing.path, headers: outgoing.headers, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${outgoing.method} ${outgoing.path} timed out`)));
    req.on("error", reject);
    req.end(outgoing.body);
  });
}
