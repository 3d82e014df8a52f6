// Cluster mode, the scale-out path: a real 3-master Valkey cluster on loopback.
import { describe, expect, it } from "vitest";
import { credKey, credentialValue, useClusterBridge } from "./helpers.ts";

describe("bridge on a 3-master Valkey cluster", () => {
  const env = useClusterBridge();

  it("has three masters that each own a third of the slots", async () => {
    const ranges = await env.masters[0].cluster("SLOTS");
    expect(ranges.reduce((sum, [from, to]) => sum + (to - from + 1), 0)).toBe(16384);
    const owners = ranges.map(([, , ...nodes]) => nodes[0][1]);
    expect(new Set(owners)).toEqual(new Set(env.cluster.nodes.map((n) => n.port)));
  });

  it("stores, reads and deletes keys in slots on every master", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => credKey("spread", `agent-${i}`));
    for (const key of keys) expect((await env.bridge.api.put(key, credentialValue(key))).status).toBe(204);

    const perMaster = await env.keysPerMaster("cred:spiffe://hexr.test/agent/spread/*");
    expect(perMaster.every((count) => count > 0)).toBe(true);
    expect(perMaster.reduce((a, b) => a + b)).toBe(30);

    for (const key of keys) {
      const reply = await env.bridge.api.get(key);
      expect(reply.status).toBe(200);
      expect(reply.body.toString()).toBe(credentialValue(key));
    }
    for (const key of keys) expect((await env.bridge.api.delete(key)).status).toBe(204);
    expect(await env.keysPerMaster("cred:spiffe://hexr.test/agent/spread/*")).toEqual([0, 0, 0]);
  });

  it("takes and releases locks on every master, the owner check included", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => credKey("locks", `agent-${i}`));
    for (const key of keys) {
      expect((await env.bridge.api.lock(key, "pod-a")).status).toBe(201);
      expect((await env.bridge.api.lock(key, "pod-b")).status).toBe(409);
    }
    const perMaster = await env.keysPerMaster("lock:cred:spiffe://hexr.test/agent/locks/*");
    expect(perMaster.every((count) => count > 0)).toBe(true);
    for (const key of keys) expect((await env.bridge.api.unlock(key, "pod-b")).status).toBe(204);
    expect((await env.keysPerMaster("lock:cred:spiffe://hexr.test/agent/locks/*")).reduce((a, b) => a + b)).toBe(30);
    for (const key of keys) expect((await env.bridge.api.unlock(key, "pod-a")).status).toBe(204);
    expect(await env.keysPerMaster("lock:cred:spiffe://hexr.test/agent/locks/*")).toEqual([0, 0, 0]);
  });

  it("serves concurrent requests across slots (auto-pipelined per node)", async () => {
    const keys = Array.from({ length: 200 }, (_, i) => credKey("concurrent", `agent-${i}`, "gcp_bigquery", "us-central1"));
    const puts = await Promise.all(keys.map((key) => env.bridge.api.put(key, `value of ${key}`)));
    expect(puts.every((reply) => reply.status === 204)).toBe(true);
    const gets = await Promise.all(keys.map((key) => env.bridge.api.get(key)));
    gets.forEach((reply, i) => expect(reply.body.toString()).toBe(`value of ${keys[i]}`));
  });

  it("purges a prefix on every master and leaves other tenants alone", async () => {
    const doomed = Array.from({ length: 40 }, (_, i) => credKey("revoked", `agent-${i}`));
    const kept = Array.from({ length: 10 }, (_, i) => credKey("revoked-not", `agent-${i}`));
    for (const key of [...doomed, ...kept]) await env.bridge.api.put(key, "v");
    const before = await env.keysPerMaster("cred:spiffe://hexr.test/agent/revoked/*");
    expect(before.every((count) => count > 0)).toBe(true);

    const reply = await env.bridge.api.purge({ prefix: "cred:spiffe://hexr.test/agent/revoked/" });
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual({ deleted: 40 });

    expect(await env.keysPerMaster("cred:spiffe://hexr.test/agent/revoked/*")).toEqual([0, 0, 0]);
    for (const key of kept) expect((await env.bridge.api.get(key)).status).toBe(200);
  });

  it("reports healthy only while every master answers PING", async () => {
    expect((await env.bridge.api.health()).status).toBe(200);
  });

  it("stores only ciphertext on every master", async () => {
    const key = credKey("cipher", "a1");
    await env.bridge.api.put(key, credentialValue("CLUSTERPLAINTEXTSECRET"));
    for (const master of env.masters) {
      for (const stored of await master.keys("*")) {
        expect((await master.getBuffer(stored))!.includes("CLUSTERPLAINTEXTSECRET")).toBe(false);
      }
    }
    expect((await env.bridge.api.get(key)).body.toString()).toContain("CLUSTERPLAINTEXTSECRET");
  });
});
