// Shared by the bridge tests: a bridge in this process in front of a real Valkey, a key file in a temp dir,
// every log line captured (to prove no value ever reaches it), and a small HTTP client for the API.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "iovalkey";
import { pino } from "pino";
import { afterAll, beforeAll } from "vitest";
import { startValkey, startValkeyCluster, type ValkeyCluster, type ValkeyServer } from "../../support/valkey.ts";
import { startBridge, type BridgeOptions, type RunningBridge } from "../index.ts";

export interface TestBridge extends RunningBridge {
  /** Every log line written so far. */
  logs(): string;
  api: ReturnType<typeof bridgeClient>;
  /** The bridge's AES key, to check blobs independently of the bridge. */
  secret: Buffer;
}

export async function startTestBridge(
  target: Pick<BridgeOptions, "valkey" | "cluster" | "commandTimeoutMs" | "revocationLogLimit">,
): Promise<TestBridge> {
  const dir = mkdtempSync(path.join(tmpdir(), "hexr-bridge-test-"));
  const secret = randomBytes(32);
  const keyFile = path.join(dir, "bridge.key");
  writeFileSync(keyFile, secret.toString("hex"));
  let logs = "";
  const logger = pino({ level: "debug" }, { write: (line: string) => void (logs += line) });
  const bridge = await startBridge({ ...target, keyFile, logger }).finally(() => rmSync(dir, { recursive: true }));
  return { ...bridge, logs: () => logs, api: bridgeClient(bridge.url), secret };
}

export interface Reply {
  status: number;
  contentType: string | null;
  headers: Headers;
  body: Buffer;
  json(): any;
}

export function bridgeClient(baseUrl: string) {
  const call = async (method: string, path: string, body?: Uint8Array<ArrayBuffer> | string): Promise<Reply> => {
    const response = await fetch(baseUrl + path, { method, body });
    const bytes = Buffer.from(await response.arrayBuffer());
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      headers: response.headers,
      body: bytes,
      json: () => JSON.parse(bytes.toString("utf8")),
    };
  };
  const credPath = (key: string) => `/v1/cred/${encodeURIComponent(key)}`;
  const lockPath = (key: string) => `/v1/locks/${encodeURIComponent(key)}`;
  return {
    call,
    get: (key: string) => call("GET", credPath(key)),
    put: (key: string, value: Uint8Array<ArrayBuffer> | string, ttlMs: number | string = 60_000) =>
      call("PUT", `${credPath(key)}?ttl_ms=${ttlMs}`, value),
    delete: (key: string) => call("DELETE", credPath(key)),
    /** Takes the exchange lock of credential `key`; `owner` is the optional owner token. */
    lock: (key: string, owner?: Uint8Array<ArrayBuffer> | string, ttlMs: number | string = 60_000) =>
      call("PUT", `${lockPath(key)}?ttl_ms=${ttlMs}`, owner),
    /** Releases it: only if `owner` holds it, or whoever holds it when no owner is given. */
    unlock: (key: string, owner?: Uint8Array<ArrayBuffer> | string) => call("DELETE", lockPath(key), owner),
    purge: (body: unknown) => call("POST", "/v1/purge", typeof body === "string" ? body : JSON.stringify(body)),
    revoke: (body: unknown) => call("POST", "/v1/revocations", typeof body === "string" ? body : JSON.stringify(body)),
    /** `since` as sent: a number, or any string to test validation. */
    revocations: (since: number | string) => call("GET", `/v1/revocations?since=${since}`),
    health: () => call("GET", "/healthz"),
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
  /** A plain client on the same Valkey, to see what the bridge really stored. */
  raw: Redis;
}

/** A real Valkey with a bridge in front of it, for the tests of one describe block. */
export function useStandaloneBridge(): StandaloneBridge {
  const env = {} as StandaloneBridge;
  beforeAll(async () => {
    env.valkey = await startValkey();
    env.bridge = await startTestBridge({ valkey: env.valkey.url });
    env.raw = new Redis(env.valkey.url);
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
  /** A plain client on each master, in node order. */
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
    env.bridge = await startTestBridge({ cluster: [env.cluster.nodes[0]] });
    env.masters = env.cluster.nodes.map((node) => new Redis(node));
  });
  afterAll(async () => {
    for (const master of env.masters ?? []) master.disconnect();
    await env.bridge?.close();
    await env.cluster?.stop();
  });
  return env;
}
