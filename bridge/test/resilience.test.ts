// Valkey going away (process gone, or hung) must give a quick 503, never a hang,
// and the bridge must serve again on its own once Valkey is back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startValkey, valkeyUsers, type ValkeyServer } from "../../support/valkey.ts";
import { credKey, expectErrorBody, startTestBridge, type TestBridge } from "./helpers.ts";

const COMMAND_TIMEOUT_MS = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function timed<T>(action: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await action();
  return { result, ms: performance.now() - started };
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe("Valkey outages", () => {
  let valkey: ValkeyServer;
  let bridge: TestBridge;
  // Outside the server's own dir, which stop() removes: the restarted server needs the same users.
  const usersDir = mkdtempSync(path.join(tmpdir(), "hexr-valkey-users-"));
  const users = valkeyUsers(usersDir);
  const key = credKey("acme", "resilient");

  beforeAll(async () => {
    valkey = await startValkey({ users });
    bridge = await startTestBridge({ valkey: valkey.url, users, commandTimeoutMs: COMMAND_TIMEOUT_MS });
  });
  afterAll(async () => {
    await bridge?.close();
    await valkey?.stop();
    rmSync(usersDir, { recursive: true, force: true });
  });

  it("a hung Valkey (SIGSTOP) gives 503 within the command timeout, then serves again after SIGCONT", async () => {
    expect((await bridge.api.put(key, "before the hang")).status).toBe(204);
    valkey.pause();
    try {
      // Writes go to another key: a write that timed out was already sent and may still land when Valkey
      // wakes up (503 on a write means "outcome unknown"), which is harmless for a cache of valid
      // credentials and for a lock, which expires.
      const otherKey = credKey("acme", "written-during-hang");
      for (const call of [
        () => bridge.api.get(key),
        () => bridge.api.put(otherKey, "v"),
        () => bridge.api.lock(otherKey, "pod-a"),
        () => bridge.api.unlock(otherKey, "pod-a"),
        () => bridge.api.health(),
      ]) {
        const { result, ms } = await timed(call);
        expect(result.status).toBe(503);
        expectErrorBody(result, "ValkeyUnavailable");
        expect(ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 5);
        expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 500);
      }
    } finally {
      valkey.resume();
    }
    await eventually(async () => (await bridge.api.get(key)).status === 200, 5_000);
    expect((await bridge.api.get(key)).body.toString()).toBe("before the hang");
  });

  it("a stopped Valkey gives 503 at once; a new one on the same port is picked up without restarting the bridge", async () => {
    const port = valkey.port;
    await valkey.stop();

    for (const call of [
      () => bridge.api.get(key),
      () => bridge.api.put(key, "v"),
      () => bridge.api.delete(key),
      () => bridge.api.lock(key, "pod-a"),
      () => bridge.api.unlock(key),
      () => bridge.api.unlock(key, "pod-a"),
    ]) {
      const { result, ms } = await timed(call);
      expect(result.status).toBe(503);
      expectErrorBody(result, "ValkeyUnavailable");
      expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 500);
    }
    const health = await bridge.api.health();
    expect(health.status).toBe(503);
    expectErrorBody(health, "ValkeyUnavailable");
    const purge = await bridge.api.purge({ prefix: "cred:spiffe://hexr.test/" });
    expect(purge.status).toBe(503);

    // Staying down for a while must not wedge the client.
    await sleep(1_500);
    expect((await bridge.api.get(key)).status).toBe(503);

    valkey = await startValkey({ port, users });
    const recoveredAfter = await eventually(async () => (await bridge.api.health()).status === 200, 10_000);
    expect(recoveredAfter).toBeLessThan(3_000);
    expect((await bridge.api.put(key, "after the restart")).status).toBe(204);
    expect((await bridge.api.get(key)).body.toString()).toBe("after the restart");
  });

  it("logs the outage in single lines, throttled, without values", () => {
    const lines = bridge.logs().trim().split("\n").map((line) => JSON.parse(line));
    const errors = lines.filter((line) => line.level === 50);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.length).toBeLessThan(20);
    expect(errors.some((line) => /valkey unavailable/.test(line.msg + line.reason))).toBe(true);
    expect(bridge.logs()).not.toContain("before the hang");
    expect(bridge.logs()).not.toContain("after the restart");
  });
});

describe("starting while Valkey is down", () => {
  it("serves 503 until Valkey appears, then 200", async () => {
    const placeholder = await startValkey();
    const port = placeholder.port;
    await placeholder.stop();
    const usersDir = mkdtempSync(path.join(tmpdir(), "hexr-valkey-users-"));
    const users = valkeyUsers(usersDir);
    const bridge = await startTestBridge({ valkey: `redis://127.0.0.1:${port}`, users, commandTimeoutMs: COMMAND_TIMEOUT_MS });
    let valkey: ValkeyServer | undefined;
    try {
      expect((await bridge.api.health()).status).toBe(503);
      valkey = await startValkey({ port, users });
      await eventually(async () => (await bridge.api.health()).status === 200, 10_000);
      expect((await bridge.api.put(credKey("acme", "late"), "v")).status).toBe(204);
    } finally {
      await bridge.close();
      await valkey?.stop();
      rmSync(usersDir, { recursive: true, force: true });
    }
  });
});
