// Encryption at rest, checked from the outside: what a plain Valkey client (or a dump) sees.
import { createDecipheriv } from "node:crypto";
import { Redis } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startValkey, type ValkeyServer } from "../../support/valkey.ts";
import { credKey, credentialValue, expectErrorBody, startTestBridge, type TestBridge } from "./helpers.ts";

const SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLAINTEXT";

describe("encryption at rest", () => {
  let valkey: ValkeyServer;
  let bridge: TestBridge;
  let raw: Redis;

  beforeAll(async () => {
    valkey = await startValkey();
    bridge = await startTestBridge({ valkey: valkey.url });
    raw = new Redis(valkey.url);
  });
  afterAll(async () => {
    raw?.disconnect();
    await bridge?.close();
    await valkey?.stop();
  });

  it("stores version | IV | tag | ciphertext, with no plaintext in Valkey", async () => {
    const key = credKey("acme", "at-rest");
    const value = credentialValue(SECRET_ACCESS_KEY);
    await bridge.api.put(key, value);

    const blob = (await raw.getBuffer(key))!;
    expect(blob).not.toBeNull();
    expect(blob.length).toBe(1 + 12 + 16 + Buffer.byteLength(value));
    expect(blob[0]).toBe(1);
    expect(blob.includes(SECRET_ACCESS_KEY)).toBe(false);
    expect(blob.includes("SecretAccessKey")).toBe(false);
    expect(blob.includes("1900000000")).toBe(false);

    // Independently of the bridge: the blob is AES-256-GCM under the key file's secret, key as AAD.
    const decipher = createDecipheriv("aes-256-gcm", bridge.secret, blob.subarray(1, 13));
    decipher.setAuthTag(blob.subarray(13, 29));
    decipher.setAAD(Buffer.from(key));
    expect(Buffer.concat([decipher.update(blob.subarray(29)), decipher.final()]).toString()).toBe(value);
  });

  it("leaves no plaintext in a full dump of the keyspace", async () => {
    await bridge.api.put(credKey("acme", "dump-1"), credentialValue(SECRET_ACCESS_KEY + "1"));
    await bridge.api.lock(`lock:${credKey("acme", "dump-2")}`, `owner ${SECRET_ACCESS_KEY}`);
    const keys = await raw.keys("*");
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) {
      const dumped = (await raw.dumpBuffer(key))!;
      expect(dumped.includes(SECRET_ACCESS_KEY)).toBe(false);
    }
  });

  it("a blob copied to another identity's key does not decrypt: 404, one log line without the value", async () => {
    const victim = credKey("acme", "victim");
    const attacker = credKey("evil-corp", "attacker");
    await bridge.api.put(victim, credentialValue(SECRET_ACCESS_KEY));
    await raw.set(attacker, (await raw.getBuffer(victim))!, "PX", 60_000);

    const reply = await bridge.api.get(attacker);
    expect(reply.status).toBe(404);
    expectErrorBody(reply, "NotFound");
    expect((await bridge.api.get(victim)).status).toBe(200);

    const warnings = bridge.logs().split("\n").filter((line) => line.includes("failed authentication"));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]).key).toBe(attacker);
    expect(bridge.logs()).not.toContain(SECRET_ACCESS_KEY);
  });

  it("a tampered blob, a plaintext value and a blob from another key file are misses", async () => {
    const tampered = credKey("acme", "tampered");
    await bridge.api.put(tampered, credentialValue(SECRET_ACCESS_KEY));
    const blob = (await raw.getBuffer(tampered))!;
    blob[blob.length - 1] ^= 0xff;
    await raw.set(tampered, blob);
    expect((await bridge.api.get(tampered)).status).toBe(404);

    const planted = credKey("acme", "planted");
    await raw.set(planted, credentialValue(SECRET_ACCESS_KEY));
    expect((await bridge.api.get(planted)).status).toBe(404);

    const other = await startTestBridge({ valkey: valkey.url });
    try {
      const shared = credKey("acme", "other-secret");
      await other.api.put(shared, "sealed by another bridge");
      expect((await bridge.api.get(shared)).status).toBe(404);
      expect((await other.api.get(shared)).status).toBe(200);
    } finally {
      await other.close();
    }
    expect(bridge.logs()).not.toContain(SECRET_ACCESS_KEY);
  });
});
