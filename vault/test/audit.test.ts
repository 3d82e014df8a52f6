// The audit log on each engine: every answered request is recorded, concurrent requests chain
// correctly, and the chain catches a record changed in the database, one removed, records
// reordered and records cut off the end, both over the admin API and with `npm run vault -- audit
// verify`, which reads the store directly.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson, chainHash, GENESIS_HASH, type AuditRecord } from "../audit.ts";
import { projectRoot } from "../../support/tools.ts";
import {
  ADMIN, agentId, ENGINES, engineFixture, SIDECAR_ACME, SIDECAR_PLATFORM, startTestVault, tempDir, testIdentity, vaultConfig,
  type EngineFixture, type TestVault, type VaultClient,
} from "./helpers.ts";

const run = promisify(execFile);

describe("the chain's definition", () => {
  it("hashes the previous hash's bytes, then the record's canonical JSON in a fixed key order", () => {
    const record = { seq: 1, time: "2026-01-01T00:00:00.000Z", spiffe_id: "spiffe://x/agent/t/a/r", caller: "spiffe://x/sidecar/t/p", operation: "get" as const, name: "N", scope: "*", version: 2, status: 200 };
    const shuffled = { status: 200, version: 2, scope: "*", name: "N", operation: "get" as const, caller: record.caller, spiffe_id: record.spiffe_id, time: record.time, seq: 1 };
    const json = '{"seq":1,"time":"2026-01-01T00:00:00.000Z","spiffe_id":"spiffe://x/agent/t/a/r","caller":"spiffe://x/sidecar/t/p","operation":"get","name":"N","scope":"*","version":2,"status":200}';
    expect(canonicalJson(record)).toBe(json);
    expect(canonicalJson(shuffled)).toBe(json);
    const expected = createHash("sha256").update(Buffer.alloc(32)).update(json).digest("hex");
    expect(chainHash(GENESIS_HASH, record)).toBe(expected);
  });
});

describe.each(ENGINES)("the audit log on %s", (engine) => {
  let fixture: EngineFixture;
  let store: Record<string, unknown>;
  let vault: TestVault;
  let acme: VaultClient;
  let platform: VaultClient;
  let configFile: string;
  const keys = tempDir();

  const verifyApi = async () => (await platform.call("GET", "/v1/audit/verify", { as: ADMIN, token: true })).json();
  const verifyCli = async () => {
    const result = await run(process.execPath, ["--import", "tsx", "vault/main.ts", "audit", "verify", "--config", configFile], { cwd: projectRoot }).then(
      (done) => ({ code: 0, stdout: done.stdout }),
      (failed: { code: number; stdout: string }) => ({ code: failed.code, stdout: failed.stdout }),
    );
    return { code: result.code, ...JSON.parse(result.stdout) };
  };
  const row = async (seq: number) => (await fixture.sql<AuditRecord>(store, "SELECT * FROM audit WHERE seq = $1", [seq]))[0];
  const count = async () => Number((await fixture.sql<{ n: number }>(store, "SELECT count(*) AS n FROM audit"))[0].n);

  beforeAll(async () => {
    fixture = engineFixture(engine);
    store = await fixture.freshStore();
    const config = vaultConfig(await testIdentity(), store, keys.dir, { log_level: "info" });
    configFile = path.join(keys.dir, "vault.json");
    writeFileSync(configFile, JSON.stringify(config));
    vault = await startTestVault(config);
    acme = await vault.client(SIDECAR_ACME);
    platform = await vault.client(SIDECAR_PLATFORM);
  });

  afterAll(async () => {
    await vault?.close();
    await fixture?.close();
    keys.remove();
  });

  it("records every answered request, concurrent ones chained in order, without values", async () => {
    await acme.put("SERIAL", "serial-value-1");
    await acme.get("SERIAL");
    await acme.get("MISSING");
    await acme.list();
    const concurrent = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const as = agentId("acme-corp", `agent-${i % 4}`, "main");
        return i % 3 === 0 ? acme.put(`C${i % 6}`, `concurrent-value-${i}`, { as }) : i % 3 === 1 ? acme.get(`C${i % 6}`, { as }) : acme.batch([`C${i % 6}`], { as });
      }),
    );
    expect(concurrent.every((reply) => [200, 201, 404].includes(reply.status))).toBe(true);
    expect(await count()).toBe(64);
    const verified = await verifyApi();
    expect(verified).toMatchObject({ ok: true, records: 64 });
    expect(verified.head).toMatch(/^[0-9a-f]{64}$/);
    const records = (await platform.call("GET", "/v1/audit?after=0&limit=4", { as: ADMIN, token: true })).json();
    expect(records.records.map((r: AuditRecord) => [r.seq, r.operation, r.name, r.status])).toEqual([
      [1, "put", "SERIAL", 201], [2, "get", "SERIAL", 200], [3, "get", "MISSING", 404], [4, "list", null, 200],
    ]);
    expect(records.records[0]).toMatchObject({ spiffe_id: agentId("acme-corp", "my-agent", "researcher"), caller: SIDECAR_ACME, scope: "*", version: 1 });
    expect(records.next).toBe(4);
    const all = JSON.stringify(await fixture.sql(store, "SELECT * FROM audit"));
    expect(all).not.toMatch(/serial-value|concurrent-value/);
    // The verify request itself was recorded (65), after the chain it verified.
    expect(await count()).toBe(66);
  });

  it("detects a record changed in place, at its seq", async () => {
    const original = await row(10);
    await fixture.sql(store, "UPDATE audit SET status = 200, name = 'COVERED_UP' WHERE seq = 10");
    expect(await verifyApi()).toEqual({ ok: false, broken_at: 10, reason: expect.stringMatching(/record 10/) });
    const cli = await verifyCli();
    expect(cli).toMatchObject({ code: 1, ok: false, broken_at: 10 });
    await fixture.sql(store, "UPDATE audit SET status = $1, name = $2 WHERE seq = 10", [original.status, original.name]);
    expect(await verifyApi()).toMatchObject({ ok: true });
  });

  it("detects a record whose hash was recomputed too, at the next one", async () => {
    const original = await row(12);
    const previous = await row(11);
    const forged = { ...original, seq: Number(original.seq), version: original.version === null ? null : Number(original.version), status: 403 };
    await fixture.sql(store, "UPDATE audit SET status = 403, hash = $1 WHERE seq = 12", [chainHash(previous.hash, forged)]);
    expect(await verifyApi()).toMatchObject({ ok: false, broken_at: 13 });
    await fixture.sql(store, "UPDATE audit SET status = $1, hash = $2 WHERE seq = 12", [original.status, original.hash]);
  });

  it("detects a removed record, records swapped, and records cut off the end", async () => {
    const removed = await row(20);
    await fixture.sql(store, "DELETE FROM audit WHERE seq = 20");
    expect(await verifyApi()).toEqual({ ok: false, broken_at: 20, reason: "record 20 is missing" });
    expect(await verifyCli()).toMatchObject({ code: 1, ok: false, broken_at: 20 });
    await fixture.sql(
      store,
      "INSERT INTO audit (seq, time, spiffe_id, caller, operation, name, scope, version, status, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
      [removed.seq, removed.time, removed.spiffe_id, removed.caller, removed.operation, removed.name, removed.scope, removed.version, removed.status, removed.hash],
    );
    expect(await verifyApi()).toMatchObject({ ok: true });

    const [a, b] = [await row(30), await row(31)];
    const swap = "UPDATE audit SET time = $2, spiffe_id = $3, operation = $4, name = $5, status = $6, hash = $7 WHERE seq = $1";
    await fixture.sql(store, swap, [30, b.time, b.spiffe_id, b.operation, b.name, b.status, b.hash]);
    await fixture.sql(store, swap, [31, a.time, a.spiffe_id, a.operation, a.name, a.status, a.hash]);
    expect(await verifyApi()).toMatchObject({ ok: false, broken_at: 30 });
    await fixture.sql(store, swap, [30, a.time, a.spiffe_id, a.operation, a.name, a.status, a.hash]);
    await fixture.sql(store, swap, [31, b.time, b.spiffe_id, b.operation, b.name, b.status, b.hash]);
    expect(await verifyApi()).toMatchObject({ ok: true });

    const head = (await fixture.sql<{ seq: number }>(store, "SELECT seq FROM audit_head"))[0];
    await fixture.sql(store, "DELETE FROM audit WHERE seq > $1", [Number(head.seq) - 3]);
    const cut = await verifyCli();
    expect(cut).toMatchObject({ code: 1, ok: false, broken_at: Number(head.seq) - 2 });
    expect(cut.reason).toMatch(/missing/);
  });

  it("lists records from the store with `audit list`", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "vault/main.ts", "audit", "list", "--config", configFile, "--after", "1", "--limit", "2"], { cwd: projectRoot });
    const lines = stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(lines.map((r) => r.seq)).toEqual([2, 3]);
    expect(lines[0]).toMatchObject({ operation: "get", name: "SERIAL", status: 200, hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });
});
