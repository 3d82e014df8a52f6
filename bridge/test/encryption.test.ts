// Encryption at rest, checked from the outside: what a plain Valkey client (or a dump) sees.
import { createDecipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { credKey, credentialValue, expectErrorBody, startTestBridge, useStandaloneBridge } from "./helpers.ts";

const SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLAINTEXT";

describe("encryption at rest", () => {
  const env = useStandaloneBridge();


  it("stores version | IV | tag | ciphertext, with no plaintext in Valkey", async () => {
    const key = credKey("acme", "at-rest");
    const value = credentialValue(SECRET_ACCESS_KEY);
    await env.bridge.api.put(key, value);

    const blob = (await env.raw.getBuffer(key))!;
    expect(blob).not.toBeNull();
    expect(blob.length).toBe(1 + 12 + 16 + Buffer.byteLength(value));
    expect(blob[0]).toBe(1);
    expect(blob.includes(SECRET_ACCESS_KEY)).toBe(false);
    expect(blob.includes("SecretAccessKey")).toBe(false);
    expect(blob.includes("1900000000")).toBe(false);

    // Independently of the bridge: the blob is AES-256-GCM under the key file's secret, key as AAD.
    const decipher = createDecipheriv("aes-256-gcm", env.bridge.secret, blob.subarray(1, 13));
    decipher.setAuthTag(blob.subarray(13, 29));
    decipher.setAAD(Buffer.from(key));
    expect(Buffer.concat([decipher.update(blob.subarray(29)), decipher.final()]).toString()).toBe(value);
  });

  it("leaves no plaintext in a full dump of the keyspace", async () => {
    await env.bridge.api.put(credKey("acme", "dump-1"), credentialValue(SECRET_ACCESS_KEY + "1"));
    await env.bridge.api.put(credKey("acme", "dump-2"), credentialValue(SECRET_ACCESS_KEY + "2"));
    await env.bridge.api.lock(credKey("acme", "dump-2"), "pod-a");
    const keys = await env.raw.keys("*");
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const key of keys) {
      const dumped = (await env.raw.dumpBuffer(key))!;
      expect(dumped.includes(SECRET_ACCESS_KEY)).toBe(false);
    }
  });

  it("a blob copied to another identity's key does not decrypt: 404, one log line without the value", async () => {
    const victim = credKey("acme", "victim");
    const attacker = credKey("evil-corp", "attacker");
    await env.bridge.api.put(victim, credentialValue(SECRET_ACCESS_KEY));
    await env.raw.set(attacker, (await env.raw.getBuffer(victim))!, "PX", 60_000);

    const reply = await env.bridge.api.get(attacker);
    expect(reply.status).toBe(404);
    expectErrorBody(reply, "NotFound");
    expect((await env.bridge.api.get(victim)).status).toBe(200);

    const warnings = env.bridge.logs().split("\n").filter((line) => line.includes("failed authentication"));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]).key).toBe(attacker);
    expect(env.bridge.logs()).not.toContain(SECRET_ACCESS_KEY);
  });

  it("a tampered blob, a plaintext value and a blob from another key file are misses", async () => {
    const tampered = credKey("acme", "tampered");
    await env.bridge.api.put(tampered, credentialValue(SECRET_ACCESS_KEY));
    const blob = (await env.raw.getBuffer(tampered))!;
    blob[blob.length - 1] ^= 0xff;
    await env.raw.set(tampered, blob);
    expect((await env.bridge.api.get(tampered)).status).toBe(404);

    const planted = credKey("acme", "planted");
    await env.raw.set(planted, credentialValue(SECRET_ACCESS_KEY));
    expect((await env.bridge.api.get(planted)).status).toBe(404);

    const other = await startTestBridge({ valkey: env.valkey.url, users: env.valkey.users });
    try {
      const shared = credKey("acme", "other-secret");
      await other.api.put(shared, "sealed by another bridge");
      expect((await env.bridge.api.get(shared)).status).toBe(404);
      expect((await other.api.get(shared)).status).toBe(200);
    } finally {
      await other.close();
    }
    expect(env.bridge.logs()).not.toContain(SECRET_ACCESS_KEY);
  });
});
