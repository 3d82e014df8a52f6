// Shared by the injector's tests: dev identity material in a temp folder, an injector started
// in-process with its log lines captured, and an HTTPS client that presents the sidecar's SVID.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import http from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { SignJWT, createLocalJWKSet, importPKCS8, jwtVerify, type JWTPayload } from "jose";
import { HEADERS, parseAgentSpiffeId } from "../../contract/index.ts";
import { DEV_AUDIENCE, DEV_ISSUER, ensureDevIdentity, mintJwtSvid, type DevIdentityPaths, type MintOptions } from "../../support/dev-identity.ts";
import { createLogger } from "../log.ts";
import { startInjector, type InjectorConfigInput, type RunningInjector } from "../server.ts";

export const PIPELINE_ID = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main";
export const ANALYST_ID = "spiffe://hexr.local/agent/acme-corp/research-analyst/main";
export const MULTI_CLOUD_ID = "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main";
export const DEFAULT_ROLE_ARN = "arn:aws:iam::123456789012:role/hexr-agent";
/** The issuer the clouds trust (the seeds' oidc.hexr.cloud): the injector, never the agents' SPIRE. */
export const OIDC_ISSUER = "https://oidc.hexr.cloud";

export interface TestIdentity {
  paths: DevIdentityPaths;
  mint(spiffeId: string, options?: MintOptions): Promise<string>;
  remove(): Promise<void>;
}

/** Dev identity material of its own for one test file. */
export async function testIdentity(): Promise<TestIdentity> {
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-injector-test-"));
  const paths = await ensureDevIdentity(dir);
  return {
    paths,
    mint: (spiffeId, options = {}) => mintJwtSvid(spiffeId, { ...options, dir }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A token with any claims, signed by the real dev key (so only the claims are wrong); unlike
 * mintJwtSvid it signs a `sub` that is no SPIFFE ID at all.
 */
export async function signedByDevKey(identity: TestIdentity, claims: Record<string, unknown>): Promise<string> {
  const key = await importPKCS8(await readFile(identity.paths.signingKey, "utf8"), "ES256");
  const { kid } = JSON.parse(await readFile(identity.paths.jwks, "utf8")).keys[0];
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: ANALYST_ID, aud: DEV_AUDIENCE, iss: DEV_ISSUER, iat: now, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: "ES256", kid })
    .sign(key);
}

/**
 * The injector as the dev stack runs it (TLS, client certificate required), on a free port, as
 * the OIDC issuer the clouds trust: its signing key generated into the test's identity folder,
 * its discovery documents on a plain-HTTP loopback listener of their own.
 */
export function baseConfig(identity: TestIdentity, opa: string | { url: string; auth: { tokenFile: string } }): InjectorConfigInput {
  const { paths } = identity;
  const opaUrl = typeof opa === "string" ? opa : opa.url;
  return {
    listen: { host: "127.0.0.1", port: 0 },
    tls: { cert_file: paths.injectorCert, key_file: paths.injectorKey, client_ca_file: paths.ca, require_client_cert: true },
    jwt: { jwks_file: paths.jwks, audience: ["hexr-credential-injector"], issuer: "https://oidc.hexr.local" },
    trust_domains: ["hexr.local"],
    // OPA's API takes only the injector's token (support/opa.ts); a bare URL is for an OPA never reached.
    opa: { url: opaUrl, timeout_ms: 500, ...(typeof opa === "string" ? {} : { token_file: opa.auth.tokenFile }) },
    oidc: {
      issuer: OIDC_ISSUER,
      signing_keys_dir: path.join(paths.dir, "oidc-keys"),
      generate_key: true,
      discovery_listen: { host: "127.0.0.1", port: 0 },
    },
  };
}

/** The injector's published JWKS, fetched from its discovery document as a cloud would. */
export async function publishedJwks(discoveryUrl: string): Promise<{ keys: Record<string, unknown>[] }> {
  const configuration = await (await fetch(`${discoveryUrl}/.well-known/openid-configuration`)).json();
  const jwksPath = new URL(configuration.jwks_uri).pathname;
  return (await fetch(`${discoveryUrl}${jwksPath}`)).json();
}

/** Verifies a token a cloud received against the injector's published JWKS: its claims, or a throw. */
export async function verifyAgainstPublishedJwks(token: string, discoveryUrl: string, audience: string, now = Date.now()): Promise<JWTPayload> {
  const keys = createLocalJWKSet((await publishedJwks(discoveryUrl)) as any);
  const { payload, protectedHeader } = await jwtVerify(token, keys, { issuer: OIDC_ISSUER, audience, algorithms: ["RS256"], currentDate: new Date(now) });
  if (protectedHeader.typ !== "JWT") throw new Error(`unexpected typ ${protectedHeader.typ}`);
  return payload;
}

export interface CapturedInjector extends RunningInjector {
  /** Every log line so far, parsed. */
  logLines(): Record<string, unknown>[];
  logText(): string;
}

/** `clock` (epoch ms) is what the injector mints and rotates keys by; tests move it. */
export async function startCaptured(config: InjectorConfigInput, options: { clock?: () => number } = {}): Promise<CapturedInjector> {
  let text = "";
  const sink = new Writable({
    write(chunk, _encoding, done) {
      text += chunk;
      done();
    },
  });
  const injector = await startInjector(config, { logger: createLogger("info", sink), clock: options.clock });
  return {
    ...injector,
    logText: () => text,
    logLines: () => text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

export interface ClientTls {
  ca: string;
  cert?: string;
  key?: string;
}

/** The sidecar's side of the mTLS connection, from the dev material. */
export async function sidecarTls(identity: TestIdentity, cert = identity.paths.sidecarCert, key = identity.paths.sidecarKey): Promise<ClientTls> {
  const [ca, certPem, keyPem] = await Promise.all([readFile(identity.paths.ca, "utf8"), readFile(cert, "utf8"), readFile(key, "utf8")]);
  return { ca, cert: certPem, key: keyPem };
}

export interface RequestSpec {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  tls?: ClientTls;
}

export function send(baseUrl: string, spec: RequestSpec): Promise<Reply> {
  const url = new URL(spec.path ?? "/exchange", baseUrl);
  const transport = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.request(
      url,
      { method: spec.method ?? "POST", headers: spec.headers, ...(spec.tls ?? {}), agent: false },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (body += chunk));
        response.on("end", () => {
          const isJson = (response.headers["content-type"] ?? "").startsWith("application/json");
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body, json: isJson ? JSON.parse(body) : undefined });
        });
      },
    );
    request.on("error", reject);
    request.end(spec.body);
  });
}

/** Headers the filter sends for an agent, with its JWT-SVID. */
export function filterHeaders(spiffeId: string, token: string, extra: Record<string, string> = {}): Record<string, string> {
  const agent = parseAgentSpiffeId(spiffeId);
  if (!agent) throw new Error(`not an agent SPIFFE ID: ${spiffeId}`);
  return {
    "content-type": "application/json",
    authorization: `Bearer ${token}`,
    [HEADERS.spiffe_id]: spiffeId,
    [HEADERS.tenant]: agent.tenant,
    [HEADERS.agent]: agent.agent,
    [HEADERS.role]: agent.role,
    [HEADERS.identity_source]: "jwt",
    ...extra,
  };
}

/** Headers the filter sends for an identity its listener asserts (identity source static): no JWT-SVID. */
export function assertedHeaders(spiffeId: string, extra: Record<string, string> = {}): Record<string, string> {
  const { authorization: _, ...headers } = filterHeaders(spiffeId, "none", { [HEADERS.identity_source]: "static" });
  return { ...headers, ...extra };
}

/** Accepts connections and never answers: a hung upstream. */
export async function startBlackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
