// What the SDK's tests share: unsigned JWT-shaped tokens for unit tests (the SDK reads sub and
// exp, the sidecar verifies), a loopback stand-in for the sidecar's POST /exchange, and
// token files.
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export const RESEARCHER = "spiffe://hexr.local/agent/acme-corp/research-analyst/main";
export const ANALYST = "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main";

export function unsignedJwt(sub: string, ttlSeconds = 3600, nowMs = Date.now()): string {
  const part = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const iat = Math.floor(nowMs / 1000);
  return `${part({ alg: "ES256", typ: "JWT" })}.${part({ sub, iat, exp: iat + ttlSeconds, aud: "hexr-credential-injector" })}.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU`;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `hexr-sdk-${prefix}-`));
}

export function tokenFile(dir: string, name: string, token: string): string {
  const file = path.join(dir, `${name}.jwt`);
  writeFileSync(file, token, { mode: 0o600 });
  return file;
}

export interface FakeSidecar {
  url: string;
  requests: { service: string; region: string; authorization: string }[];
  /** Seconds of life of the credentials it hands out (default 3600). */
  lifetime: number;
  /** Milliseconds before it answers. */
  delayMs: number;
  /** Set to answer with this status and contract error instead. */
  fail?: { status: number; type: string; message: string };
  close(): Promise<void>;
}

/** Answers POST /exchange like the sidecar, with credentials derived from a counter. */
export async function startFakeSidecar(): Promise<FakeSidecar> {
  let serial = 0;
  const state: FakeSidecar = {
    url: "",
    requests: [],
    lifetime: 3600,
    delayMs: 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { service: string; region: string };
      const authorization = String(req.headers.authorization ?? "");
      state.requests.push({ ...body, authorization });
      const sub = JSON.parse(Buffer.from(authorization.replace(/^Bearer /, "").split(".")[1] ?? "", "base64url").toString() || "{}").sub;
      setTimeout(() => {
        if (state.fail) {
          res.writeHead(state.fail.status, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { type: state.fail.type, message: state.fail.message } }));
          return;
        }
        serial++;
        const provider = body.service.split("_")[0];
        const expiresAt = Math.floor(Date.now() / 1000) + state.lifetime;
        const credentials =
          provider === "aws"
            ? { AccessKeyId: `ASIAFAKE${String(serial).padStart(12, "0")}`, SecretAccessKey: `secret-${serial}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`, SessionToken: `session-${serial}-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy` }
            : { access_token: `token-${serial}-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz`, token_type: "Bearer" };
        res.writeHead(200, { "content-type": "application/json", "x-hexr-cache": "L3", "x-hexr-expires-at": String(expiresAt) });
        res.end(JSON.stringify({ service: body.service, provider, region: body.region, spiffe_id: sub, credentials, expiration: new Date(expiresAt * 1000).toISOString(), expires_at: expiresAt }));
      }, state.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** An identity source returning whatever `current` holds (tests switch identities with it). */
export function fixedIdentity(token: () => string) {
  return {
    description: "a test identity",
    async fetchJwtSvid() {
      const t = token();
      const claims = JSON.parse(Buffer.from(t.split(".")[1], "base64url").toString());
      return { token: t, spiffeId: claims.sub as string, expiresAt: claims.exp as number };
    },
  };
}
