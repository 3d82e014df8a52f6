// The HTTP API the wasm filter is written against, against a real standalone Valkey.
import { describe, expect, it } from "vitest";
import { credentialKey, lockKey } from "../../contract/index.ts";
import { credKey, credentialValue, expectErrorBody, FIXTURE_CALLER, useStandaloneBridge } from "./helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("bridge API (standalone Valkey)", () => {
  const env = useStandaloneBridge();

  describe("get / set / delete", () => {
    it("stores a value and returns the exact bytes as application/octet-stream", async () => {
      const key = credKey("acme", "roundtrip");
      const value = credentialValue("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
      const stored = await env.bridge.api.put(key, value);
      expect(stored.status).toBe(204);
      expect(stored.headers.get("content-length")).toBeNull(); // RFC 9110: no content-length on 204
      expect(stored.body.length).toBe(0);
      const reply = await env.bridge.api.get(key);
      expect(reply.status).toBe(200);
      expect(reply.contentType).toBe("application/octet-stream");
      expect(reply.headers.get("content-length")).toBe(String(Buffer.byteLength(value)));
      expect(reply.body.toString("utf8")).toBe(value);
    });

    it("keeps arbitrary binary values byte for byte, up to exactly 16 KiB", async () => {
      const key = credKey("acme", "binary");
      const value = Buffer.alloc(16 * 1024, 0);
      for (let i = 0; i < value.length; i++) value[i] = (i * 131) & 0xff;
      expect((await env.bridge.api.put(key, value)).status).toBe(204);
      const reply = await env.bridge.api.get(key);
      expect(reply.body.equals(value)).toBe(true);
    });

    it("overwrites an existing value", async () => {
      const key = credKey("acme", "overwrite");
      await env.bridge.api.put(key, "first");
      await env.bridge.api.put(key, "second");
      expect((await env.bridge.api.get(key)).body.toString()).toBe("second");
    });

    it("answers a miss with 404 and a JSON error", async () => {
      const reply = await env.bridge.api.get(credKey("acme", "never-written"));
      expect(reply.status).toBe(404);
      expectErrorBody(reply, "NotFound");
    });

    it("deletes with 204, also when the key is absent", async () => {
      const key = credKey("acme", "deleted");
      await env.bridge.api.put(key, "value");
      expect((await env.bridge.api.delete(key)).status).toBe(204);
      expect((await env.bridge.api.get(key)).status).toBe(404);
      expect(await env.raw.exists(key)).toBe(0);
      expect((await env.bridge.api.delete(key)).status).toBe(204);
    });

    it("accepts keys whose '/' and ':' arrive unencoded", async () => {
      const key = credKey("acme", "unencoded");
      await env.bridge.api.put(key, "value");
      const reply = await env.bridge.api.call("GET", `/v1/cred/${key}`);
      expect(reply.status).toBe(200);
      expect(reply.body.toString()).toBe("value");
    });
  });

  describe("TTL", () => {
    it("sets the TTL in milliseconds (PX) and the value expires", async () => {
      const key = credKey("acme", "expiring");
      expect((await env.bridge.api.put(key, "short-lived", 300)).status).toBe(204);
      const pttl = await env.raw.pttl(key);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(300);
      expect((await env.bridge.api.get(key)).status).toBe(200);
      await sleep(450);
      expect((await env.bridge.api.get(key)).status).toBe(404);
    });

    it("accepts the 12 hour maximum", async () => {
      const key = credKey("acme", "twelve-hours");
      expect((await env.bridge.api.put(key, "v", 43_200_000)).status).toBe(204);
      expect(await env.raw.pttl(key)).toBeGreaterThan(43_200_000 - 5_000);
    });
  });

  describe("exchange locks (/v1/locks/{key})", () => {
    it("takes a lock once (201), refuses it while held (409), and again after it expires", async () => {
      const key = credKey("acme", "locked");
      const taken = await env.bridge.api.lock(key, "pod-a", 300);
      expect(taken.status).toBe(201);
      expect(taken.headers.get("content-length")).toBe("0");
      const held = await env.bridge.api.lock(key, "pod-b", 300);
      expect(held.status).toBe(409);
      expectErrorBody(held, "Conflict");
      await sleep(450);
      expect((await env.bridge.api.lock(key, "pod-b", 300)).status).toBe(201);
    });

    it("stores lock:{key} with PX, holding the owner token in plain text, and no credential", async () => {
      const key = credKey("acme", "lock-at-rest");
      expect((await env.bridge.api.lock(key, "pod-a owner token", 5_000)).status).toBe(201);
      expect(await env.raw.get(lockKey(key))).toBe("pod-a owner token");
      const pttl = await env.raw.pttl(lockKey(key));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(5_000);
      expect(await env.raw.exists(key)).toBe(0);
      expect((await env.bridge.api.get(key)).status).toBe(404);
    });

    it("stores 1 for a lock taken without an owner token", async () => {
      const key = credKey("acme", "anonymous-lock");
      expect((await env.bridge.api.lock(key)).status).toBe(201);
      expect(await env.raw.get(lockKey(key))).toBe("1");
    });

    it("keeps a binary owner token of exactly 128 bytes and refuses 129 (413, nothing taken)", async () => {
      const key = credKey("acme", "owner-size");
      const owner = Buffer.from(Array.from({ length: 128 }, (_, i) => (i * 37) & 0xff));
      expect((await env.bridge.api.lock(key, owner)).status).toBe(201);
      expect((await env.raw.getBuffer(lockKey(key)))!.equals(owner)).toBe(true);
      expect((await env.bridge.api.unlock(key, owner)).status).toBe(204);
      expect(await env.raw.exists(lockKey(key))).toBe(0);
      const other = credKey("acme", "owner-too-big");
      expectErrorBody(await env.bridge.api.lock(other, Buffer.alloc(129, 1)), "PayloadTooLarge");
      expect(await env.raw.exists(lockKey(other))).toBe(0);
    });

    it("grants a contended lock to exactly one of many concurrent takers", async () => {
      const key = credKey("acme", "contended");
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => env.bridge.api.lock(key, `pod-${i}`)));
      expect(replies.filter((reply) => reply.status === 201)).toHaveLength(1);
      expect(replies.filter((reply) => reply.status === 409)).toHaveLength(19);
    });

    it("releases without an owner token whoever holds it; 204 also when absent", async () => {
      const key = credKey("acme", "released");
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      const released = await env.bridge.api.unlock(key);
      expect(released.status).toBe(204);
      expect(released.headers.get("content-length")).toBeNull();
      expect(await env.raw.exists(lockKey(key))).toBe(0);
      expect((await env.bridge.api.lock(key, "pod-b")).status).toBe(201);
      expect((await env.bridge.api.unlock(key)).status).toBe(204);
      expect((await env.bridge.api.unlock(key)).status).toBe(204);
    });

    it("releases with an owner token only the holder's lock, answering 204 either way", async () => {
      const key = credKey("acme", "owned");
      expect((await env.bridge.api.lock(key, "pod-b")).status).toBe(201);
      // pod-a's lock expired and pod-b took it: pod-a's late release must leave pod-b's lock alone.
      expect((await env.bridge.api.unlock(key, "pod-a")).status).toBe(204);
      expect(await env.raw.get(lockKey(key))).toBe("pod-b");
      expect((await env.bridge.api.unlock(key, "pod-b")).status).toBe(204);
      expect(await env.raw.exists(lockKey(key))).toBe(0);
      expect((await env.bridge.api.unlock(key, "pod-b")).status).toBe(204);
    });

    it("releases with an owner token after Valkey lost its script cache", async () => {
      const key = credKey("acme", "script-flush");
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      expect((await env.bridge.api.unlock(key, "pod-a")).status).toBe(204);
      await env.raw.script("FLUSH");
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      expect((await env.bridge.api.unlock(key, "pod-a")).status).toBe(204);
      expect(await env.raw.exists(lockKey(key))).toBe(0);
    });

    it("is independent of the credential: writing or deleting one never touches the other", async () => {
      const key = credKey("acme", "lock-and-cred");
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      expect((await env.bridge.api.put(key, "value")).status).toBe(204);
      expect((await env.bridge.api.delete(key)).status).toBe(204);
      expect(await env.raw.get(lockKey(key))).toBe("pod-a");
      expect((await env.bridge.api.put(key, "value")).status).toBe(204);
      expect((await env.bridge.api.unlock(key)).status).toBe(204);
      expect((await env.bridge.api.get(key)).body.toString()).toBe("value");
    });

    it("refuses lock: keys on every /v1/cred route and on /v1/locks, touching nothing", async () => {
      const key = credKey("acme", "no-lock-keys");
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      const lock = lockKey(key);
      for (const reply of [
        await env.bridge.api.get(lock),
        await env.bridge.api.put(lock, "v"),
        await env.bridge.api.delete(lock),
        await env.bridge.api.lock(lock, "pod-b"),
        await env.bridge.api.unlock(lock),
      ]) {
        expect(expectErrorBody(reply, "BadRequest").message).toContain("/v1/locks/");
      }
      expect(await env.raw.get(lock)).toBe("pod-a");
      expect(await env.raw.exists(lockKey(lock))).toBe(0);
    });

    it("is not purged: purge and revocation prefixes are cred: prefixes", async () => {
      const key = credKey("lock-purge", "a1");
      await env.bridge.api.put(key, "v");
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      const purged = await env.bridge.api.purge({ prefix: "cred:spiffe://hexr.test/agent/lock-purge/" });
      expect(purged.json()).toEqual({ deleted: 1 });
      expect(await env.raw.exists(key)).toBe(0);
      expect(await env.raw.get(lockKey(key))).toBe("pod-a");
    });

    it.each([
      ["missing", ""],
      ["zero", "?ttl_ms=0"],
      ["negative", "?ttl_ms=-5"],
      ["fractional", "?ttl_ms=1.5"],
      ["leading zero", "?ttl_ms=0100"],
      ["not a number", "?ttl_ms=soon"],
      ["over 5 minutes", "?ttl_ms=300001"],
      ["a credential's 12 hours", "?ttl_ms=43200000"],
    ])("PUT with ttl_ms %s → 400, no lock taken", async (name, query) => {
      const key = credKey("acme", `lock-ttl-${name.replace(/\W+/g, "-")}`);
      const reply = await env.bridge.api.call("PUT", `/v1/locks/${encodeURIComponent(key)}${query}`, "pod-a");
      expect(expectErrorBody(reply, "BadRequest").message).toContain("300000");
      expect(await env.raw.exists(lockKey(key))).toBe(0);
    });

    it("accepts the 5 minute maximum", async () => {
      const key = credKey("acme", "lock-five-minutes");
      expect((await env.bridge.api.lock(key, "pod-a", 300_000)).status).toBe(201);
      expect(await env.raw.pttl(lockKey(key))).toBeGreaterThan(300_000 - 5_000);
    });

    it("never echoes the owner token in an error body or the log", async () => {
      const key = credKey("acme", "lock-echo");
      expect((await env.bridge.api.lock(key, "OWNERMARKER-1")).status).toBe(201);
      const held = await env.bridge.api.lock(key, "OWNERMARKER-2");
      expect(held.status).toBe(409);
      expect(held.body.toString()).not.toContain("OWNERMARKER");
      expect(env.bridge.logs()).not.toContain("OWNERMARKER");
    });
  });

  describe("purge", () => {
    it("deletes every cred: key under the prefix and nothing else", async () => {
      const doomed = [credKey("purge-me", "a1"), credKey("purge-me", "a2", "gcp_bigquery", "us-central1")];
      const kept = [credKey("purge-keep", "a1"), credKey("purge-mex", "a1")];
      const locked = credKey("purge-me", "a3");
      for (const key of [...doomed, ...kept]) await env.bridge.api.put(key, "v");
      expect((await env.bridge.api.lock(locked, "pod-a")).status).toBe(201);
      const reply = await env.bridge.api.purge({ prefix: "cred:spiffe://hexr.test/agent/purge-me/" });
      expect(reply.status).toBe(200);
      expect(reply.contentType).toBe("application/json");
      expect(reply.json()).toEqual({ deleted: 2 });
      for (const key of doomed) expect((await env.bridge.api.get(key)).status).toBe(404);
      for (const key of kept) expect((await env.bridge.api.get(key)).status).toBe(200);
      expect(await env.raw.exists(lockKey(locked))).toBe(1);
    });

    it("pages through many keys with SCAN", async () => {
      const keys = Array.from({ length: 1200 }, (_, i) => credKey("purge-many", `agent-${i}`));
      await Promise.all(keys.map((key) => env.bridge.api.put(key, "v")));
      expect((await env.bridge.api.purge({ prefix: "cred:spiffe://hexr.test/agent/purge-many/" })).json()).toEqual({
        deleted: 1200,
      });
      expect(await env.raw.keys("cred:spiffe://hexr.test/agent/purge-many/*")).toEqual([]);
    });

    it("reports 0 when nothing matches", async () => {
      expect((await env.bridge.api.purge({ prefix: "cred:spiffe://nobody.test/" })).json()).toEqual({ deleted: 0 });
    });

    it("treats glob characters as a bad prefix, never as a pattern", async () => {
      await env.bridge.api.put(credKey("glob", "a1"), "v");
      for (const prefix of ["cred:spiffe://hexr.test/agent/gl*", "cred:spiffe://hexr.test/agent/gl?b", "cred:spiffe://[h]"]) {
        expectErrorBody(await env.bridge.api.purge({ prefix }), "BadRequest");
      }
      expect((await env.bridge.api.get(credKey("glob", "a1"))).status).toBe(200);
    });
  });

  describe("health", () => {
    it("answers 200 {status: ok} while Valkey answers PING", async () => {
      const reply = await env.bridge.api.health();
      expect(reply.status).toBe(200);
      expect(reply.json()).toEqual({ status: "ok" });
    });
  });

  describe("bad input: every class gets a JSON error", () => {
    const good = credKey("acme", "bad-input");
    const enc = encodeURIComponent(good);

    it.each([
      ["empty key", "/v1/cred/"],
      ["no cred: prefix", `/v1/cred/${encodeURIComponent(good.slice(5))}`],
      ["another namespace", `/v1/cred/${encodeURIComponent("session:" + good.slice(5))}`],
      ["not a spiffe id", `/v1/cred/${encodeURIComponent("cred:https://hexr.test/a:aws_s3:us-east-1")}`],
      ["upper-case trust domain", `/v1/cred/${encodeURIComponent("cred:spiffe://HEXR.test/agent/a/b/c:aws_s3:us-east-1")}`],
      ["missing region", `/v1/cred/${encodeURIComponent("cred:spiffe://hexr.test/agent/a/b/c:aws_s3")}`],
      ["extra part", `/v1/cred/${encodeURIComponent(good + ":extra")}`],
      ["region over 32 characters", `/v1/cred/${encodeURIComponent(credKey("a", "b", "aws_s3", "r".repeat(33)))}`],
      ["glob in key", `/v1/cred/${encodeURIComponent(good.replace("acme", "ac*e"))}`],
      ["space in key", `/v1/cred/${encodeURIComponent(good.replace("acme", "ac me"))}`],
      ["newline in key", `/v1/cred/${encodeURIComponent(good + "\n")}`],
      ["non-ASCII key", `/v1/cred/${encodeURIComponent(good.replace("acme", "acmé"))}`],
      ["bad percent-encoding", `/v1/cred/${enc}%ZZ`],
      ["truncated percent-encoding", `/v1/cred/${enc}%E2%82`],
      ["key over 512 bytes", `/v1/cred/${encodeURIComponent(credKey("acme", "a".repeat(480)))}`],
    ])("GET with %s → 400", async (_name, path) => {
      expectErrorBody(await env.bridge.api.call("GET", path), "BadRequest");
    });

    it("accepts the longest key the contract allows (493 bytes) and refuses one byte more", async () => {
      const spiffeId = `spiffe://hexr.test/agent/${"t".repeat(128)}/${"a".repeat(128)}/${"r".repeat(400 - 283)}`;
      expect(spiffeId).toHaveLength(400);
      const longest = credentialKey(spiffeId, `azure_${"s".repeat(48)}`, "r".repeat(32));
      expect(longest).toHaveLength(493);
      expect((await env.bridge.api.put(longest, "v")).status).toBe(204);
      expect((await env.bridge.api.get(longest)).status).toBe(200);
      expect((await env.bridge.api.lock(longest)).status).toBe(201);
      const over = longest.replace("/rrr", "/rrrr");
      expectErrorBody(await env.bridge.api.put(over, "v"), "BadRequest");
      expectErrorBody(await env.bridge.api.lock(over), "BadRequest");
    });

    it.each([
      ["missing", ""],
      ["zero", "?ttl_ms=0"],
      ["negative", "?ttl_ms=-5"],
      ["fractional", "?ttl_ms=1.5"],
      ["exponent", "?ttl_ms=1e3"],
      ["leading zero", "?ttl_ms=0100"],
      ["not a number", "?ttl_ms=soon"],
      ["empty", "?ttl_ms="],
      ["over 12 hours", "?ttl_ms=43200001"],
      ["huge", "?ttl_ms=99999999999999999999"],
    ])("PUT with ttl_ms %s → 400, nothing written", async (_name, query) => {
      const key = credKey("acme", `ttl-${_name.replace(/ /g, "-")}`);
      expectErrorBody(await env.bridge.api.call("PUT", `/v1/cred/${encodeURIComponent(key)}${query}`, "v"), "BadRequest");
      expect(await env.raw.exists(key)).toBe(0);
    });

    it.each(["1", "true", ""])("PUT with nx=%s → 400 pointing at /v1/locks, nothing written", async (nx) => {
      const reply = await env.bridge.api.call("PUT", `/v1/cred/${enc}?ttl_ms=1000&nx=${nx}`, "v");
      expect(expectErrorBody(reply, "BadRequest").message).toBe("nx is not supported; locks are /v1/locks/{key}");
      expect(await env.raw.exists(good)).toBe(0);
    });

    it("PUT with a value over 16 KiB → 413, declared or streamed, nothing written", async () => {
      const key = credKey("acme", "too-big");
      expectErrorBody(await env.bridge.api.put(key, Buffer.alloc(16 * 1024 + 1)), "PayloadTooLarge");
      const streamed = await env.bridge.api.call("PUT", `/v1/cred/${encodeURIComponent(key)}?ttl_ms=1000`, undefined, {
        chunks: [Buffer.alloc(10_000), Buffer.alloc(10_000)],
      });
      expect(streamed.status).toBe(413);
      expectErrorBody(streamed, "PayloadTooLarge");
      expect(await env.raw.exists(key)).toBe(0);
    });

    it.each([
      ["not JSON", "{prefix"],
      ["an array", "[]"],
      ["null", "null"],
      ["no prefix", "{}"],
      ["a numeric prefix", '{"prefix": 5}'],
      ["a prefix outside cred:spiffe://", '{"prefix": "cred:"}'],
      ["a lock: prefix", '{"prefix": "lock:cred:spiffe://hexr.test/"}'],
      ["an empty prefix", '{"prefix": ""}'],
      ["a prefix over 512 bytes", JSON.stringify({ prefix: "cred:spiffe://" + "a".repeat(500) })],
    ])("purge with %s → 400", async (_name, body) => {
      expectErrorBody(await env.bridge.api.purge(body), "BadRequest");
    });

    it("purge with a body over 4 KiB → 413", async () => {
      expectErrorBody(await env.bridge.api.purge({ prefix: "cred:spiffe://x/", pad: "p".repeat(5000) }), "PayloadTooLarge");
    });

    it.each([
      ["GET", "/"],
      ["GET", "/v1/cred"],
      ["PUT", "/v1/locks"],
      ["PUT", "/v1/lock/x"],
      ["GET", "/v1/credentials/x"],
      ["GET", "/v2/cred/x"],
      ["POST", "/v1/purge/extra"],
      ["GET", "/healthz/"],
    ])("%s %s → 404", async (method, path) => {
      expectErrorBody(await env.bridge.api.call(method, path), "NotFound");
    });

    it.each([
      ["POST", `/v1/cred/${enc}`, "GET, PUT, DELETE"],
      ["PATCH", `/v1/cred/${enc}`, "GET, PUT, DELETE"],
      ["GET", `/v1/locks/${enc}`, "PUT, DELETE"],
      ["POST", `/v1/locks/${enc}`, "PUT, DELETE"],
      ["GET", "/v1/purge", "POST"],
      ["DELETE", "/v1/purge", "POST"],
      ["POST", "/healthz", "GET"],
    ])("%s %s → 405 with allow: %s", async (method, path, allow) => {
      const response = await env.bridge.api.call(method, path);
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe(allow);
      expect(response.json().error.type).toBe("MethodNotAllowed");
    });

    it("never echoes the key or the value in an error body", async () => {
      const secretish = "SECRETMARKER123";
      const reply = await env.bridge.api.call("PUT", `/v1/cred/cred%3A${secretish}?ttl_ms=1`, secretish);
      expect(reply.status).toBe(400);
      expect(reply.body.toString()).not.toContain(secretish);
    });
  });

  it("serves many requests over one kept-alive connection", async () => {
    const { Agent, request } = await import("node:https");
    const { readFileSync } = await import("node:fs");
    const tls = await env.bridge.identity.client(FIXTURE_CALLER);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: readFileSync(tls.cert!), key: readFileSync(tls.key!), ca: readFileSync(tls.ca) });
    const sockets = new Set<unknown>();
    const key = credKey("acme", "keepalive");
    await env.bridge.api.put(key, "v");
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request(`${env.bridge.url}/v1/cred/${encodeURIComponent(key)}`, { agent }, (res) => {
          sockets.add(res.socket);
          expect(res.statusCode).toBe(200);
          res.resume().on("end", resolve);
        });
        req.on("error", reject).end();
      });
    }
    agent.destroy();
    expect(sockets.size).toBe(1);
  });

  it("logs no value: nothing written in this suite appears in the log", () => {
    expect(env.bridge.logs()).not.toContain("wJalrXUtnFEMI");
    expect(env.bridge.logs()).not.toContain("short-lived");
  });
});
