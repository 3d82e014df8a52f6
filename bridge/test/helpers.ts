// Shared by the bridge tests: a bridge in this process in front of a real Valkey (ACL users, as in
// every deployment), a key file in a temp dir, every log line captured (to prove no value ever
// reaches it), and a small HTTPS client for the API that presents a client certificate.
//
// Identities come from a dev CA of their own (.run/bridge-test-identity, support/dev-identity.ts):
// the bridge's X.509-SVID, callers' X.509-SVIDs and admins' JWT-SVIDs. The fixture bridge trusts
// one caller for every tenant (FIXTURE_CALLER) and one admin (ADMIN); the attack tests
// (security.test.ts) start bridges with realistic, narrow access files.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "iovalkey";
import { pino } from "pino";
import { afterAll, beforeAll } from "vitest";
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  ensureDevIdentity,
  issueServiceSvid,
  issueX509Svid,
  mintJwtSvid,
  type DevIdentityPaths,
  type MintOptions,
  type X509SvidPaths,
} from "../../support/dev-identity.ts";
import { projectRoot } from "../../support/tools.ts";
import {
  startValkey,
  startValkeyCluster,
  type ValkeyCluster,
  type ValkeyServer,
  type ValkeyUsers,
} from "../../support/valkey.ts";
import type { AccessConfig } from "../auth/access-config.ts";
import { startBridge, type BridgeOptions, type RunningBridge } from "../index.ts";

/** Test identities' own dev CA and JWT signing key, apart from the stack's .dev/. */
export const TEST_IDENTITY_DIR = path.join(projectRoot, ".run", "bridge-test-identity");
/** The fixture bridge's one caller: may use every tenant's keys in every trust domain. */
export const FIXTURE_CALLER = "spiffe://hexr.local/sidecar/bridge-tests/fixture";
/** The fixture bridge's admin: its JWT-SVID may purge and record revocations. */
export const ADMIN = "spiffe://hexr.local/agent/platform/ops/admin";

/** A client's TLS files: its certificate and key (absent = no client certificate) and the CA it trusts. */
export interface ClientTls {
  cert?: string;
  key?: string;
  ca: string;
}

export interface TestIdentity {
  paths: DevIdentityPaths;
  /** The bridge's own X.509-SVID. */
  bridge: X509SvidPaths;
  /** TLS files of a client presenting an X.509-SVID for `spiffeId` from the test CA. */
  client(spiffeId: string): Promise<ClientTls>;
  /** A JWT-SVID for `spiffeId`, signed with the test signing key. */
  token(spiffeId: string, options?: MintOptions): Promise<string>;
}

let identity: Promise<TestIdentity> | undefined;

export function testIdentity(): Promise<TestIdentity> {
  identity ??= (async () => {
    const paths = await ensureDevIdentity(TEST_IDENTITY_DIR);
    const bridge = await issueServiceSvid("bridge", TEST_IDENTITY_DIR);
    return {
      paths,
      bridge,
      async client(spiffeId) {
        const svid = await issueX509Svid(spiffeId, TEST_IDENTITY_DIR);
        return { cert: svid.cert, key: svid.key, ca: paths.ca };
      },
      token: (spiffeId, options) => mintJwtSvid(spiffeId, { ...options, dir: TEST_IDENTITY_DIR }),
    };
  })();
  return identity;
}

/** The fixture's access file: FIXTURE_CALLER for everything, ADMIN for purge and revocations. */
export function fixtureAccess(id: TestIdentity): AccessConfig {
  return {
    callers: [{ spiffe_id: FIXTURE_CALLER, tenants: ["*"], trust_domains: ["*"] }],
    admins: [ADMIN],
    jwt: { jwks_file: id.paths.jwks, audience: [DEV_AUDIENCE], issuer: DEV_ISSUER, clock_tolerance_seconds: 5 },
  };
}

export interface TestBridge extends RunningBridge {
  /** Every log line written so far. */
  logs(): string;
  /** The API as FIXTURE_CALLER, purging and revoking with ADMIN's JWT-SVID. */
  api: BridgeClient;
  /** The API as another client (another certificate, another token, or none). */
  client(tls: ClientTls | null, adminToken?: string): BridgeClient;
  identity: TestIdentity;
  /** The bridge's AES key, to check blobs independently of the bridge. */
  secret: Buffer;
}

export interface TestBridgeOptions extends Pick<BridgeOptions, "valkey" | "cluster" | "commandTimeoutMs" | "revocationLogLimit" | "valkeyTlsCa" | "metrics"> {
  /** The Valkey's users: the bridge logs in as hexr-bridge with its password file. */
  users: ValkeyUsers;
  /** Default: fixtureAccess(). */
  access?: AccessConfig;
}

export async function startTestBridge(options: TestBridgeOptions): Promise<TestBridge> {
  const { users, access, ...target } = options;
  const id = await testIdentity();
  const dir = mkdtempSync(path.join(tmpdir(), "hexr-bridge-test-"));
  const secret = randomBytes(32);
  const keyFile = path.join(dir, "bridge.key");
  writeFileSync(keyFile, secret.toString("hex"));
  let logs = "";
  const logger = pino({ level: "debug" }, { write: (line: string) => void (logs += line) });
  const bridge = await startBridge({
    ...target,
    valkeyPasswordFile: users.bridge.passwordFile,
    keyFile,
    tls: { cert: id.bridge.cert, key: id.bridge.key, trustBundle: id.paths.ca },
    access: access ?? fixtureAccess(id),
    logger,
  }).finally(() => rmSync(dir, { recursive: true }));
  const clients: BridgeClient[] = [];
  const client = (tls: ClientTls | null, adminToken?: string) => {
    const made = bridgeClient(bridge.url, tls ?? { ca: id.paths.ca }, adminToken);
    clients.push(made);
    return made;
  };
  const api = client(await id.client(FIXTURE_CALLER), await id.token(ADMIN));
  return {
    ...bridge,
    logs: () => logs,
    api,
    client,
    identity: id,
    secret,
    async close() {
      for (const made of clients) made.close();
      await bridge.close();
    },
  };
}

export interface Reply {
  status: number;
  contentType: string | null;
  headers: Headers;
  body: Buffer;
  json(): any;
}

export interface CallOptions {
  headers?: Record<string, string>;
  /** Sent as separate chunks (transfer-encoding: chunked), as a streaming client does. */
  chunks?: Buffer[];
}

export type BridgeClient = ReturnType<typeof bridgeClient>;

/**
 * The API over HTTPS with keep-alive, presenting `tls.cert` (when given). Purge and revocation
 * requests carry `adminToken` as `authorization: Bearer` (when given), as the filter forwards it.
 */
export function bridgeClient(baseUrl: string, tls: ClientTls, adminToken?: string) {
  const agent = new Agent({
    keepAlive: true,
    ca: readFileSync(tls.ca),
    ...(tls.cert && tls.key ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
  });
  const call = (method: string, path: string, body?: Uint8Array | string, options: CallOptions = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      // Node sends DELETE bodies without a length unless told: say it, as fetch and Envoy do.
      const length = body !== undefined && !options.chunks ? { "content-length": String(Buffer.byteLength(body)) } : {};
      const req = request(baseUrl + path, { method, agent, headers: { ...length, ...options.headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const bytes = Buffer.concat(chunks);
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
          }
          resolve({
            status: res.statusCode ?? 0,
            contentType: headers.get("content-type"),
            headers,
            body: bytes,
            json: () => JSON.parse(bytes.toString("utf8")),
          });
        });
      });
      req.on("error", reject);
      if (options.chunks) {
        for (const chunk of options.chunks) req.write(chunk);
        req.end();
      } else {
        req.end(body);
      }
    });
  const admin = adminToken ? { authorization: `Bearer ${adminToken}` } : undefined;
  const json = (body: unknown) => (typeof body === "string" ? body : JSON.stringify(body));
  const credPath = (key: string) => `/v1/cred/${encodeURIComponent(key)}`;
  const lockPath = (key: string) => `/v1/locks/${encodeURIComponent(key)}`;
  return {
    call,
    get: (key: string) => call("GET", credPath(key)),
    put: (key: string, value: Uint8Array | string, ttlMs: number | string = 60_000) =>
      call("PUT", `${credPath(key)}?ttl_ms=${ttlMs}`, value),
    delete: (key: string) => call("DELETE", credPath(key)),
    /** Takes the exchange lock of credential `key`; `owner` is the optional owner token. */
    lock: (key: string, owner?: Uint8Array | string, ttlMs: number | string = 60_000) =>
      call("PUT", `${lockPath(key)}?ttl_ms=${ttlMs}`, owner),
    /** Releases it: only if `owner` holds it, or whoever holds it when no owner is given. */
    unlock: (key: string, owner?: Uint8Array | string) => call("DELETE", lockPath(key), owner),
    purge: (body: unknown) => call("POST", "/v1/purge", json(body), { headers: admin }),
    revoke: (body: unknown) => call("POST", "/v1/revocations", json(body), { headers: admin }),
    /** `since` as sent: a number, or any string to test validation. */
    revocations: (since: number | string) => call("GET", `/v1/revocations?since=${since}`),
    health: () => call("GET", "/healthz"),
    /** Closes its kept-alive connections. */
    close: () => agent.destroy(),
  };
}

/** A key in the seeds' format: cred:{spiffe-id}:{service}:{region}. */
export function credKey(tenant: string, agent: string, service = "aws_s3", region = "us-east-1", role = "worker"): string {
  return `cred:spiffe://hexr.test/agent/${tenant}/${agent}/${role}:${service}:${region}`;
}

/** What an injector answer looks like in L2 ("{expires_at}\n{body}"), with recognisable secret material. */
export function credentialValue(secretAccessKey: string): string {
  const body = JSON.stringify({
    service: "aws_s3",
    credentials: { AccessKeyId: "ASIATESTKEY", SecretAccessKey: secretAccessKey, SessionToken: "FwoGZXIvYXdzEJr" },
    expires_at: 1_900_000_000,
  });
  return `1900000000\n${body}`;
}

/** The standard error body: {"error":{"type","message"}}. */
export function expectErrorBody(reply: Reply, type: string): { type: string; message: string } {
  if (reply.contentType !== "application/json") throw new Error(`expected a JSON error, got ${reply.contentType}`);
  const { error } = reply.json();
  if (error?.type !== type || typeof error.message !== "string" || error.message.length === 0) {
    throw new Error(`expected error type ${type}, got ${reply.body.toString()}`);
  }
  return error;
}

export interface StandaloneBridge {
  valkey: ValkeyServer;
  bridge: TestBridge;
  /** A plain client on the same Valkey (as its admin user), to see what the bridge really stored. */
  raw: Redis;
}

/** A real Valkey with a bridge in front of it, for the tests of one describe block. */
export function useStandaloneBridge(access?: (id: TestIdentity) => AccessConfig): StandaloneBridge {
  const env = {} as StandaloneBridge;
  beforeAll(async () => {
    env.valkey = await startValkey();
    env.bridge = await startTestBridge({
      valkey: env.valkey.url,
      users: env.valkey.users,
      access: access?.(await testIdentity()),
    });
    env.raw = new Redis(env.valkey.adminUrl);
  });
  afterAll(async () => {
    env.raw?.disconnect();
    await env.bridge?.close();
    await env.valkey?.stop();
  });
  return env;
}

export interface ClusterBridge {
  cluster: ValkeyCluster;
  bridge: TestBridge;
  /** A plain client on each master (as the admin user), in node order. */
  masters: Redis[];
  /** How many keys matching `pattern` each master holds, in node order. */
  keysPerMaster(pattern: string): Promise<number[]>;
}

/** A real 3-master Valkey cluster with a bridge in front of it, for the tests of one describe block. */
export function useClusterBridge(): ClusterBridge {
  const env = {
    keysPerMaster: (pattern: string) => Promise.all(env.masters.map(async (master) => (await master.keys(pattern)).length)),
  } as ClusterBridge;
  beforeAll(async () => {
    env.cluster = await startValkeyCluster(3);
    // Seeding with one node is enough: the client discovers the others.
    env.bridge = await startTestBridge({ cluster: [env.cluster.nodes[0]], users: env.cluster.users });
    const { username, password } = env.cluster.users.admin;
    env.masters = env.cluster.nodes.map((node) => new Redis({ ...node, username, password }));
  });
  afterAll(async () => {
    for (const master of env.masters ?? []) master.disconnect();
    await env.bridge?.close();
    await env.cluster?.stop();
  });
  return env;
}
