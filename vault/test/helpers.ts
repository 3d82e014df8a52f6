// Shared by the vault's tests: identity material from a dev CA of their own
// (.run/vault-test-identity, support/dev-identity.ts), a vault config for either engine, a vault
// started in this process with every log line captured (to prove no value ever reaches one), an
// HTTPS client that presents a sidecar's X.509-SVID and sets the headers the exchange filter
// sets, and a PostgreSQL started once per test file (support/postgres.ts).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:https";
import type { PeerCertificate } from "node:tls";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import Database from "better-sqlite3";
import {
  DEV_AUDIENCE, DEV_ISSUER, ensureDevIdentity, issueX509Svid, mintJwtSvid, type DevIdentityPaths, type MintOptions, type X509SvidPaths,
} from "../../support/dev-identity.ts";
import { startPostgres, type PostgresServer } from "../../support/postgres.ts";
import { projectRoot } from "../../support/tools.ts";
import { createLogger } from "../log.ts";
import { startVault, type RunningVault } from "../server.ts";

export const TEST_IDENTITY_DIR = path.join(projectRoot, ".run", "vault-test-identity");
/** Another dev CA altogether: its certificates chain to nothing the vault trusts. */
export const UNTRUSTED_IDENTITY_DIR = path.join(projectRoot, ".run", "vault-test-untrusted-identity");
export const VAULT_SPIFFE_ID = "spiffe://hexr.local/hexr-system/vault";
export const SIDECAR_ACME = "spiffe://hexr.local/sidecar/acme-corp/pod-1";
export const SIDECAR_GLOBEX = "spiffe://hexr.local/sidecar/globex/pod-1";
/** Listed by no caller rule. */
export const STRANGER = "spiffe://hexr.local/hexr-system/stranger";
export const ADMIN = "spiffe://hexr.local/agent/platform/ops/admin";
export const SIDECAR_PLATFORM = "spiffe://hexr.local/sidecar/platform/pod-1";

export const agentId = (tenant: string, agent: string, role: string) => `spiffe://hexr.local/agent/${tenant}/${agent}/${role}`;
export const RESEARCHER = agentId("acme-corp", "my-agent", "researcher");
export const WRITER = agentId("acme-corp", "my-agent", "writer");
export const OTHER_AGENT = agentId("acme-corp", "other-agent", "researcher");
export const GLOBEX_AGENT = agentId("globex", "my-agent", "researcher");

export interface TestIdentity {
  paths: DevIdentityPaths;
  vault: X509SvidPaths;
  svid(spiffeId: string): Promise<X509SvidPaths>;
  token(spiffeId: string, options?: MintOptions): Promise<string>;
}

let identity: Promise<TestIdentity> | undefined;

export function testIdentity(): Promise<TestIdentity> {
  identity ??= (async () => {
    const paths = await ensureDevIdentity(TEST_IDENTITY_DIR);
    return {
      paths,
      vault: await issueX509Svid(VAULT_SPIFFE_ID, TEST_IDENTITY_DIR),
      svid: (spiffeId) => issueX509Svid(spiffeId, TEST_IDENTITY_DIR),
      token: (spiffeId, options) => mintJwtSvid(spiffeId, { ...options, dir: TEST_IDENTITY_DIR }),
    };
  })();
  return identity;
}

export type Engine = "sqlite" | "postgres";

export interface EngineFixture {
  engine: Engine;
  /** The config's `store` section for a fresh, empty database. */
  freshStore(): Promise<Record<string, unknown>>;
  /** Runs SQL against the database of `store` (a section freshStore gave): for looking and tampering. */
  sql<T = Record<string, unknown>>(store: Record<string, unknown>, text: string, args?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** SQLite in a temp dir, or a database of its own on this file's PostgreSQL (started on first use). */
export function engineFixture(engine: Engine): EngineFixture {
  const dir = mkdtempSync(path.join(tmpdir(), "hexr-vault-test-"));
  let postgres: Promise<PostgresServer> | undefined;
  let databases = 0;
  const server = () => (postgres ??= startPostgres());
  return {
    engine,
    async freshStore() {
      if (engine === "sqlite") return { engine, path: path.join(dir, `vault-${++databases}.db`) };
      const pgServer = await server();
      const name = `vault_${++databases}`;
      const admin = new pg.Client(pgServer.clientConfig());
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return { engine, url: `postgres://${pgServer.user}@127.0.0.1:${pgServer.port}/${name}`, password_file: pgServer.passwordFile };
    },
    async sql<T>(store: Record<string, unknown>, text: string, args: unknown[] = []) {
      if (engine === "sqlite") {
        const db = new Database(store.path as string);
        try {
          const statement = db.prepare(text.replace(/\$(\d+)/g, "@p$1"));
          const named = [Object.fromEntries(args.map((arg, index) => [`p${index + 1}`, arg]))].filter(() => args.length > 0);
          return (statement.reader ? statement.all(...named) : (statement.run(...named), [])) as T[];
        } finally {
          db.close();
        }
      }
      const pgServer = await server();
      const client = new pg.Client({ ...pgServer.clientConfig(), database: new URL(store.url as string).pathname.slice(1) });
      await client.connect();
      try {
        return (await client.query(text, args)).rows as T[];
      } finally {
        await client.end();
      }
    },
    async close() {
      if (postgres) await (await postgres).stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const ENGINES: Engine[] = ["sqlite", "postgres"];

/** A vault config as the stack would write it: acme-corp's and globex's sidecars, the platform admin, a generated KEK file. */
export function vaultConfig(id: TestIdentity, store: Record<string, unknown>, kekDir: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { host: "127.0.0.1", port: 0 },
    tls: { cert_file: id.vault.cert, key_file: id.vault.key, client_ca_file: id.paths.ca },
    trust_domains: ["hexr.local"],
    caller_rules: [
      { spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/*", tenants: ["acme-corp"] },
      { spiffe_id: "spiffe://hexr.local/sidecar/globex/*", tenants: ["globex"] },
      { spiffe_id: "spiffe://hexr.local/sidecar/platform/*", tenants: ["platform"] },
    ],
    jwt: { jwks_file: id.paths.jwks, audience: [DEV_AUDIENCE], issuer: DEV_ISSUER, clock_tolerance_seconds: 5 },
    admins: [ADMIN],
    store,
    kek: { active: "k1", keys: [{ id: "k1", file: path.join(kekDir, "k1.key") }], generate_missing: true },
    log_level: "debug",
    ...overrides,
  };
}

export interface TestVault extends RunningVault {
  logs(): string;
  /** A client presenting `sidecar`'s X.509-SVID (from the test CA unless `untrusted`). */
  client(sidecar: string, options?: { untrusted?: boolean }): Promise<VaultClient>;
}

export async function startTestVault(config: Record<string, unknown>, options: { tlsReloadIntervalMs?: number } = {}): Promise<TestVault> {
  const id = await testIdentity();
  let logs = "";
  const logger = createLogger("debug", { write: (line: string) => void (logs += line) });
  const vault = await startVault(config, { logger, ...options });
  const clients: VaultClient[] = [];
  return {
    ...vault,
    logs: () => logs,
    async client(sidecar, options = {}) {
      const svid = options.untrusted
        ? await (async () => (await ensureDevIdentity(UNTRUSTED_IDENTITY_DIR), issueX509Svid(sidecar, UNTRUSTED_IDENTITY_DIR)))()
        : await id.svid(sidecar);
      const client = vaultClient(vault.url, { ca: id.paths.ca, cert: svid.cert, key: svid.key }, id);
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      await vault.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): any;
}

export interface CallOptions {
  /** The identity the sidecar asserts (x-hexr-spiffe-id); null sends none. */
  as?: string | null;
  /** x-hexr-identity-source; default "jwt" when a token is sent, else "mtls". */
  source?: string | null;
  /** Forward this JWT-SVID, or mint one for `as` (true). */
  token?: string | boolean;
  body?: unknown;
  /** Sent as is (not JSON-encoded). */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

export type VaultClient = ReturnType<typeof vaultClient>;

/** HTTPS with keep-alive; the server is checked by its SPIFFE ID (URI SAN), as Envoy checks it. */
export function vaultClient(baseUrl: string, tls: { ca: string; cert: string; key: string }, id: TestIdentity) {
  const agent = new Agent({
    keepAlive: true,
    ca: readFileSync(tls.ca),
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    checkServerIdentity: (_host: string, cert: PeerCertificate) =>
      cert.subjectaltname === `URI:${VAULT_SPIFFE_ID}` ? undefined : new Error(`not the vault: ${cert.subjectaltname}`),
  });
  const call = async (method: string, target: string, options: CallOptions = {}): Promise<Reply> => {
    const as = options.as === undefined ? RESEARCHER : options.as;
    const token = options.token === true ? (as ? await id.token(as) : undefined) : options.token || undefined;
    const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const headers: Record<string, string> = {
      ...(as ? { "x-hexr-spiffe-id": as } : {}),
      ...(options.source === null ? {} : { "x-hexr-identity-source": options.source ?? (token ? "jwt" : "mtls") }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } : {}),
      ...options.headers,
    };
    return new Promise((resolve, reject) => {
      const req = request(baseUrl + target, { method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      });
      req.on("error", reject);
      req.end(body);
    });
  };
  return {
    call,
    put: (name: string, value: string, options: CallOptions & { scope?: string } = {}) =>
      call("PUT", `/v1/secrets/${name}${options.scope ? `?scope=${options.scope}` : ""}`, { ...options, body: { value } }),
    get: (name: string, options: CallOptions & { version?: number } = {}) =>
      call("GET", `/v1/secrets/${name}${options.version ? `?version=${options.version}` : ""}`, options),
    list: (options: CallOptions = {}) => call("GET", "/v1/secrets", options),
    delete: (name: string, options: CallOptions = {}) => call("DELETE", `/v1/secrets/${name}`, options),
    batch: (names: unknown, options: CallOptions = {}) => call("POST", "/v1/secrets/_batch", { ...options, body: { names } }),
    close: () => agent.destroy(),
  };
}

/** The contract's error body, checked: type and status as docs/vault-api.md gives them, and no value in it. */
export function expectError(reply: Reply, status: number, type: string, values: string[] = []): { type: string; message: string } {
  if (reply.status !== status) throw new Error(`expected ${status}, got ${reply.status}: ${reply.text}`);
  const body = reply.json();
  if (Object.keys(body).join() !== "error" || Object.keys(body.error).sort().join() !== "message,type") {
    throw new Error(`not the contract's error body: ${reply.text}`);
  }
  if (body.error.type !== type) throw new Error(`expected type ${type}: ${reply.text}`);
  if (reply.headers["cache-control"] !== "no-store") throw new Error("no cache-control: no-store");
  for (const value of values) if (reply.text.includes(value)) throw new Error("a value is in the error body");
  return body.error;
}

export function tempDir(prefix = "hexr-vault-test-"): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
