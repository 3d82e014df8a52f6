// Revocation: POST /v1/revocations purges a prefix from L2 and then records it under a new epoch;
// GET /v1/revocations?since=E is what every sidecar polls. Against real Valkey, standalone and cluster.
import { Redis } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockKey } from "../../contract/index.ts";
import { startValkey, type ValkeyServer } from "../../support/valkey.ts";
import { credKey, credentialValue, expectErrorBody, startTestBridge, type TestBridge, useClusterBridge, useStandaloneBridge } from "./helpers.ts";

// The contract's key names (docs/filter-contract.md), spelled out here rather than imported from the bridge.
const EPOCH_KEY = "{hexr-revocations}:epoch";
const LOG_KEY = "{hexr-revocations}:log";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tenantPrefix = (tenant: string) => `cred:spiffe://hexr.test/agent/${tenant}/`;

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe("revocations (standalone Valkey)", () => {
  const env = useStandaloneBridge();

  const currentEpoch = async () => {
    const reply = await env.bridge.api.revocations(-1);
    expect(reply.status).toBe(200);
    return reply.json().epoch as number;
  };


  it("answers epoch 0 and no prefixes before the first revocation", async () => {
    for (const since of [-1, 0, 7]) {
      const reply = await env.bridge.api.revocations(since);
      expect(reply.status).toBe(200);
      expect(reply.contentType).toBe("application/json");
      // A reader at 7 is ahead of a log at 0: the log was lost, so it cannot know what it missed.
      expect(reply.json()).toEqual({ epoch: 0, prefixes: [], gap: since > 0 });
    }
    expect(await env.raw.exists(EPOCH_KEY, LOG_KEY)).toBe(0);
  });

  it("purges the prefix from L2, records it under epoch 1 and reads it back", async () => {
    const doomed = [credKey("revoke-me", "a1"), credKey("revoke-me", "a2", "gcp_bigquery", "us-central1")];
    const kept = [credKey("revoke-keep", "a1"), credKey("revoke-mex", "a1")];
    const locked = credKey("revoke-me", "a3");
    for (const key of [...doomed, ...kept]) expect((await env.bridge.api.put(key, credentialValue(`REVOKEDSECRET-${key}`))).status).toBe(204);
    expect((await env.bridge.api.lock(locked, "pod-a")).status).toBe(201);

    const reply = await env.bridge.api.revoke({ prefix: tenantPrefix("revoke-me") });
    expect(reply.status).toBe(200);
    expect(reply.contentType).toBe("application/json");
    expect(reply.json()).toEqual({ epoch: 1, deleted: 2 });

    for (const key of doomed) {
      const gone = await env.bridge.api.get(key);
      expect(gone.status).toBe(404);
      expectErrorBody(gone, "NotFound");
    }
    for (const key of kept) {
      const still = await env.bridge.api.get(key);
      expect(still.status).toBe(200);
      expect(still.body.toString()).toBe(credentialValue(`REVOKEDSECRET-${key}`));
    }
    expect(await env.raw.exists(lockKey(locked))).toBe(1); // locks are never purged; they expire or are released

    expect((await env.bridge.api.revocations(0)).json()).toEqual({ epoch: 1, prefixes: [tenantPrefix("revoke-me")], gap: false });
    expect((await env.bridge.api.revocations(-1)).json()).toEqual({ epoch: 1, prefixes: [], gap: false });
    expect((await env.bridge.api.revocations(1)).json()).toEqual({ epoch: 1, prefixes: [], gap: false });
  });

  it("keeps the epoch in {hexr-revocations}:epoch and the log as a sorted set of {epoch}|{prefix}", async () => {
    const before = await currentEpoch();
    const prefix = tenantPrefix("layout");
    const { epoch } = (await env.bridge.api.revoke({ prefix })).json();
    expect(epoch).toBe(before + 1);
    expect(await env.raw.get(EPOCH_KEY)).toBe(String(epoch));
    expect(await env.raw.type(LOG_KEY)).toBe("zset");
    expect(await env.raw.zscore(LOG_KEY, `${epoch}|${prefix}`)).toBe(String(epoch));
    expect(await env.raw.zcard(LOG_KEY)).toBe(epoch);
  });

  it("answers since=E with every prefix revoked at an epoch above E, in epoch order", async () => {
    const base = await currentEpoch();
    const prefixes = ["since-a", "since-b", "since-c", "since-d"].map(tenantPrefix);
    for (const [i, prefix] of prefixes.entries()) {
      expect((await env.bridge.api.revoke({ prefix })).json()).toEqual({ epoch: base + i + 1, deleted: 0 });
    }
    const now = base + prefixes.length;
    for (let since = base; since <= now; since++) {
      expect((await env.bridge.api.revocations(since)).json()).toEqual({ epoch: now, prefixes: prefixes.slice(since - base), gap: false });
    }
    // A sidecar ahead of the log (Valkey lost its data) gets the log's epoch and nothing to drop.
    // A reader ahead of the log: Valkey lost it and started again; what it held is unknown.
    expect((await env.bridge.api.revocations(now + 100)).json()).toEqual({ epoch: now, prefixes: [], gap: true });
    expect((await env.bridge.api.revocations(-1)).json()).toEqual({ epoch: now, prefixes: [], gap: false });
    const all = (await env.bridge.api.revocations(0)).json().prefixes as string[];
    expect(all.slice(-prefixes.length)).toEqual(prefixes);
    expect(all[0]).toBe(tenantPrefix("revoke-me"));
  });

  it("records the same prefix again under a new epoch when it is revoked twice", async () => {
    const base = await currentEpoch();
    const prefix = tenantPrefix("twice");
    await env.bridge.api.put(credKey("twice", "a1"), "v");
    expect((await env.bridge.api.revoke({ prefix })).json()).toEqual({ epoch: base + 1, deleted: 1 });
    await env.bridge.api.put(credKey("twice", "a1"), "v");
    expect((await env.bridge.api.revoke({ prefix })).json()).toEqual({ epoch: base + 2, deleted: 1 });
    expect((await env.bridge.api.revocations(base)).json()).toEqual({ epoch: base + 2, prefixes: [prefix, prefix], gap: false });
  });

  it("gives concurrent revocations distinct epochs, each listed once in epoch order", async () => {
    const base = await currentEpoch();
    const prefixes = Array.from({ length: 25 }, (_, i) => tenantPrefix(`concurrent-${i}`));
    const replies = await Promise.all(prefixes.map((prefix) => env.bridge.api.revoke({ prefix })));
    expect(replies.every((reply) => reply.status === 200)).toBe(true);
    const epochs = replies.map((reply) => reply.json().epoch as number);
    expect([...epochs].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => base + i + 1));
    const byEpoch = prefixes.map((prefix, i) => ({ prefix, epoch: epochs[i] })).sort((a, b) => a.epoch - b.epoch);
    expect((await env.bridge.api.revocations(base)).json()).toEqual({
      epoch: base + 25,
      prefixes: byEpoch.map((entry) => entry.prefix),
      gap: false,
    });
  });

  it("purges before it records: the DEL reaches Valkey before the epoch moves", async () => {
    const key = credKey("ordered", "a1");
    await env.bridge.api.put(key, "v");
    const client = new Redis(env.valkey.adminUrl);
    const monitor = await client.monitor(); // a second connection; resolves once Valkey has answered MONITOR
    const commands: string[][] = [];
    monitor.on("monitor", (_time: string, args: string[]) => commands.push(args.map(String)));
    try {
      expect((await env.bridge.api.revoke({ prefix: tenantPrefix("ordered") })).json().deleted).toBe(1);
      const isRecord = (args: string[]) =>
        /^(eval|evalsha)$/i.test(args[0]) || (/^incr$/i.test(args[0]) && args[1] === EPOCH_KEY);
      await eventually(() => commands.some(isRecord), 2_000);
      const deletedAt = commands.findIndex((args) => /^del$/i.test(args[0]) && args[1] === key);
      const recordedAt = commands.findIndex(isRecord);
      expect(deletedAt).toBeGreaterThanOrEqual(0);
      expect(recordedAt).toBeGreaterThan(deletedAt);
    } finally {
      monitor.disconnect();
      client.disconnect();
    }
  });

  it("still records after Valkey's script cache was flushed", async () => {
    const base = await currentEpoch();
    await env.raw.script("FLUSH");
    expect((await env.bridge.api.revoke({ prefix: tenantPrefix("flushed") })).json()).toEqual({ epoch: base + 1, deleted: 0 });
    await env.raw.script("FLUSH");
    expect((await env.bridge.api.revocations(base)).json()).toEqual({ epoch: base + 1, prefixes: [tenantPrefix("flushed")], gap: false });
  });

  describe("bad input: every class gets a JSON error and changes nothing", () => {
    it.each([
      ["not JSON", "{prefix"],
      ["an empty body", ""],
      ["an array", "[]"],
      ["null", "null"],
      ["a string", '"cred:spiffe://hexr.test/"'],
      ["no prefix", "{}"],
      ["a numeric prefix", '{"prefix": 5}'],
      ["a prefix outside cred:spiffe://", '{"prefix": "cred:"}'],
      ["a lock: prefix", '{"prefix": "lock:cred:spiffe://hexr.test/"}'],
      ["an empty prefix", '{"prefix": ""}'],
      ["a glob in the prefix", '{"prefix": "cred:spiffe://hexr.test/agent/rev*"}'],
      ["a space in the prefix", '{"prefix": "cred:spiffe://hexr.test/agent/re v"}'],
      ["a prefix over 512 bytes", JSON.stringify({ prefix: "cred:spiffe://" + "a".repeat(500) })],
    ])("POST with %s → 400", async (_name, body) => {
      const key = credKey("rev", "untouched");
      await env.bridge.api.put(key, "v");
      const before = await currentEpoch();
      expectErrorBody(await env.bridge.api.revoke(body), "BadRequest");
      expect(await currentEpoch()).toBe(before);
      expect((await env.bridge.api.get(key)).status).toBe(200);
    });

    it("POST with a body over 4 KiB → 413, nothing recorded", async () => {
      const before = await currentEpoch();
      expectErrorBody(await env.bridge.api.revoke({ prefix: "cred:spiffe://x/", pad: "p".repeat(5000) }), "PayloadTooLarge");
      expect(await currentEpoch()).toBe(before);
    });

    it.each([
      ["missing", "/v1/revocations"],
      ["missing, other parameters", "/v1/revocations?epoch=3"],
      ["empty", "/v1/revocations?since="],
      ["below -1", "/v1/revocations?since=-2"],
      ["negative zero", "/v1/revocations?since=-0"],
      ["fractional", "/v1/revocations?since=1.5"],
      ["exponent", "/v1/revocations?since=1e3"],
      ["leading zero", "/v1/revocations?since=01"],
      ["plus sign", "/v1/revocations?since=%2B1"],
      ["space", "/v1/revocations?since=%201"],
      ["hex", "/v1/revocations?since=0x10"],
      ["not a number", "/v1/revocations?since=latest"],
      ["beyond 2^53 - 1", "/v1/revocations?since=9007199254740992"],
      ["huge", "/v1/revocations?since=99999999999999999999"],
    ])("GET with since %s → 400", async (_name, path) => {
      const reply = await env.bridge.api.call("GET", path);
      expect(reply.status).toBe(400);
      expectErrorBody(reply, "BadRequest");
    });

    it("GET accepts since up to 2^53 - 1", async () => {
      const reply = await env.bridge.api.revocations("9007199254740991");
      expect(reply.status).toBe(200);
      expect(reply.json()).toEqual({ epoch: await currentEpoch(), prefixes: [], gap: true });
    });

    it.each(["PUT", "DELETE", "PATCH"])("%s /v1/revocations → 405 with allow: GET, POST", async (method) => {
      const response = await env.bridge.api.call(method, "/v1/revocations");
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("GET, POST");
      expect(response.headers.get("content-type")).toBe("application/json");
      expect(response.json().error.type).toBe("MethodNotAllowed");
    });

    it.each([
      ["GET", "/v1/revocations/"],
      ["GET", "/v1/revocations/1"],
      ["POST", "/v1/revocation"],
      ["POST", "/v1/revocations/extra"],
    ])("%s %s → 404", async (method, path) => {
      expectErrorBody(await env.bridge.api.call(method, path), "NotFound");
    });
  });

  it("logs no value: nothing written in this suite appears in the log", () => {
    expect(env.bridge.logs()).not.toContain("REVOKEDSECRET");
  });
});

describe("revocation log trimming (limit 5)", () => {
  let valkey: ValkeyServer;
  let bridge: TestBridge;
  let raw: Redis;

  beforeAll(async () => {
    valkey = await startValkey();
    bridge = await startTestBridge({ valkey: valkey.url, users: valkey.users, revocationLogLimit: 5 });
    raw = new Redis(valkey.adminUrl);
  });
  afterAll(async () => {
    raw?.disconnect();
    await bridge?.close();
    await valkey?.stop();
  });

  it("keeps only the newest entries; the epoch keeps counting", async () => {
    const prefixes = Array.from({ length: 8 }, (_, i) => tenantPrefix(`trim-${i + 1}`));
    for (const [i, prefix] of prefixes.entries()) {
      expect((await bridge.api.revoke({ prefix })).json()).toEqual({ epoch: i + 1, deleted: 0 });
      expect(await raw.zcard(LOG_KEY)).toBe(Math.min(i + 1, 5));
    }
    // Revocations 1 to 3 were trimmed: a reader at epoch 0 is told it cannot know what they revoked.
    expect((await bridge.api.revocations(0)).json()).toEqual({ epoch: 8, prefixes: prefixes.slice(3), gap: true });
    expect((await bridge.api.revocations(3)).json()).toEqual({ epoch: 8, prefixes: prefixes.slice(3), gap: false });
    expect((await bridge.api.revocations(5)).json()).toEqual({ epoch: 8, prefixes: prefixes.slice(5), gap: false });
    expect(await raw.zrange(LOG_KEY, 0, 0, "WITHSCORES")).toEqual([`4|${prefixes[3]}`, "4"]);
  });

  it("refuses a limit that is not a positive integer", async () => {
    for (const revocationLogLimit of [0, -1, 1.5, Number.NaN]) {
      await expect(startTestBridge({ valkey: valkey.url, users: valkey.users, revocationLogLimit })).rejects.toThrow(/revocation log limit/);
    }
  });
});

describe("revocations on a 3-master Valkey cluster", () => {
  const env = useClusterBridge();

  it("answers epoch 0 before the first revocation", async () => {
    expect((await env.bridge.api.revocations(-1)).json()).toEqual({ epoch: 0, prefixes: [], gap: false });
    expect((await env.bridge.api.revocations(0)).json()).toEqual({ epoch: 0, prefixes: [], gap: false });
  });

  it("purges the prefix on every master, then records it; both keys live in one slot on one master", async () => {
    const doomed = Array.from({ length: 40 }, (_, i) => credKey("cluster-revoked", `agent-${i}`));
    const kept = Array.from({ length: 10 }, (_, i) => credKey("cluster-kept", `agent-${i}`));
    for (const key of [...doomed, ...kept]) expect((await env.bridge.api.put(key, credentialValue(key))).status).toBe(204);
    expect((await env.keysPerMaster(`${tenantPrefix("cluster-revoked")}*`)).every((count) => count > 0)).toBe(true);

    const reply = await env.bridge.api.revoke({ prefix: tenantPrefix("cluster-revoked") });
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual({ epoch: 1, deleted: 40 });

    for (const key of doomed) expect((await env.bridge.api.get(key)).status).toBe(404);
    for (const key of kept) expect((await env.bridge.api.get(key)).body.toString()).toBe(credentialValue(key));
    expect(await env.keysPerMaster(`${tenantPrefix("cluster-revoked")}*`)).toEqual([0, 0, 0]);

    expect(await env.masters[0].cluster("KEYSLOT", EPOCH_KEY)).toBe(await env.masters[0].cluster("KEYSLOT", LOG_KEY));
    expect((await env.keysPerMaster("{hexr-revocations}:*")).sort()).toEqual([0, 0, 2]);
    expect((await env.bridge.api.revocations(0)).json()).toEqual({ epoch: 1, prefixes: [tenantPrefix("cluster-revoked")], gap: false });
  });

  it("answers since=E in epoch order", async () => {
    const prefixes = ["c-a", "c-b", "c-c"].map(tenantPrefix);
    for (const [i, prefix] of prefixes.entries()) {
      expect((await env.bridge.api.revoke({ prefix })).json()).toEqual({ epoch: i + 2, deleted: 0 });
    }
    expect((await env.bridge.api.revocations(1)).json()).toEqual({ epoch: 4, prefixes, gap: false });
    expect((await env.bridge.api.revocations(3)).json()).toEqual({ epoch: 4, prefixes: prefixes.slice(2), gap: false });
    expect((await env.bridge.api.revocations(4)).json()).toEqual({ epoch: 4, prefixes: [], gap: false });
    expect((await env.bridge.api.revocations(-1)).json()).toEqual({ epoch: 4, prefixes: [], gap: false });
  });

  it("validates input the same way", async () => {
    expectErrorBody(await env.bridge.api.revoke({ prefix: "cred:spiffe://hexr.test/*" }), "BadRequest");
    expectErrorBody(await env.bridge.api.revocations("-2"), "BadRequest");
    expect((await env.bridge.api.revocations(-1)).json().epoch).toBe(4);
  });
});

describe("revocations while Valkey is in trouble", () => {
  const COMMAND_TIMEOUT_MS = 200;
  let valkey: ValkeyServer;
  let bridge: TestBridge;

  beforeAll(async () => {
    valkey = await startValkey();
    bridge = await startTestBridge({ valkey: valkey.url, users: valkey.users, commandTimeoutMs: COMMAND_TIMEOUT_MS });
  });
  afterAll(async () => {
    await bridge?.close();
    await valkey?.stop();
  });

  it("a hung Valkey gives 503 within the command timeout; the log is intact afterwards", async () => {
    expect((await bridge.api.revoke({ prefix: tenantPrefix("before-hang") })).json()).toEqual({ epoch: 1, deleted: 0 });
    valkey.pause();
    try {
      for (const call of [() => bridge.api.revoke({ prefix: tenantPrefix("during-hang") }), () => bridge.api.revocations(0)]) {
        const started = performance.now();
        const reply = await call();
        const ms = performance.now() - started;
        expect(reply.status).toBe(503);
        expectErrorBody(reply, "ValkeyUnavailable");
        expect(ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 5);
        expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 500);
      }
    } finally {
      valkey.resume();
    }
    await eventually(async () => (await bridge.api.revocations(0)).status === 200, 5_000);
    // The POST that got 503 hung in its purge SCAN, before anything was recorded.
    expect((await bridge.api.revocations(0)).json()).toEqual({ epoch: 1, prefixes: [tenantPrefix("before-hang")], gap: false });
  });

  it("a stopped Valkey gives 503 on both routes", async () => {
    await valkey.stop();
    const posted = await bridge.api.revoke({ prefix: tenantPrefix("while-down") });
    expect(posted.status).toBe(503);
    expectErrorBody(posted, "ValkeyUnavailable");
    for (const since of [-1, 0]) {
      const polled = await bridge.api.revocations(since);
      expect(polled.status).toBe(503);
      expectErrorBody(polled, "ValkeyUnavailable");
    }
  });
});
