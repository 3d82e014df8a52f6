// The storage contract (store/store.ts), one suite run against both engines: versions and their
// optimistic checks, pruning, the namespace cap, deletes, the audit records committed with the
// writes they record and chaining in commit order even when writers race (in one process, and
// from two "replicas" on one database), and the row operations KEK rotation uses.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chain, EMPTY_HEAD, rfc3339, verifyAudit, type AuditEntry } from "../audit.ts";
import { parseConfig } from "../config.ts";
import { openStore } from "../store/open.ts";
import type { NewVersion, SecretKey, VaultStore } from "../store/store.ts";
import { createLogger } from "../log.ts";
import { ENGINES, engineFixture, tempDir, testIdentity, vaultConfig, type EngineFixture } from "./helpers.ts";

const LIMITS = { versionsKept: 3, maxSecrets: 5 };
const log = createLogger("silent");

function entry(name: string | null, status = 201): AuditEntry {
  return { time: rfc3339(), spiffe_id: "spiffe://hexr.local/agent/t/a/r", caller: "spiffe://hexr.local/sidecar/t/p", operation: "put", name, scope: "*", version: 1, status };
}

function version(key: SecretKey, n: number, scope = "*", kekId = "k1"): NewVersion {
  return {
    key,
    scope,
    version: n,
    createdAt: rfc3339(),
    sealed: { nonce: randomBytes(12), ciphertext: randomBytes(40), kekId, wrappedDek: randomBytes(61) },
  };
}

describe.each(ENGINES)("the %s store", (engine) => {
  let fixture: EngineFixture;
  const keys = tempDir();
  const open = async (section?: Record<string, unknown>) => {
    const storeSection = section ?? (await fixture.freshStore());
    const config = parseConfig(vaultConfig(await testIdentity(), storeSection, keys.dir));
    return { store: await openStore(config.store, log), section: storeSection };
  };
  const opened: VaultStore[] = [];
  const fresh = async () => {
    const { store, section } = await open();
    opened.push(store);
    return { store, section };
  };

  beforeAll(() => {
    fixture = engineFixture(engine);
  });

  afterAll(async () => {
    for (const store of opened) await store.close().catch(() => {});
    await fixture?.close();
    keys.remove();
  });

  it("stores versions, reads the newest or any kept one, and lists a namespace sorted", async () => {
    const { store } = await fresh();
    const ns = { trustDomain: "hexr.local", tenant: "acme", agent: "a1" };
    const key = { ...ns, name: "B" };
    expect(await store.head(key)).toBeUndefined();
    expect(await store.read(key)).toBeUndefined();
    const v1 = version(key, 1);
    expect(await store.putVersion(v1, null, LIMITS, [entry("B")])).toBe("stored");
    expect(await store.putVersion(version(key, 2), 1, LIMITS, [entry("B")])).toBe("stored");
    expect(await store.head(key)).toEqual({ scope: "*", version: 2 });
    const read = await store.read(key, 1);
    expect(read).toMatchObject({ scope: "*", latest: 2, row: { version: 1, scope: "*", createdAt: v1.createdAt } });
    expect(Buffer.compare(read!.row!.sealed.ciphertext, v1.sealed.ciphertext)).toBe(0);
    expect(Buffer.compare(read!.row!.sealed.nonce, v1.sealed.nonce)).toBe(0);
    expect(Buffer.compare(read!.row!.sealed.wrappedDek, v1.sealed.wrappedDek)).toBe(0);
    expect((await store.read(key))!.row!.version).toBe(2);
    expect(await store.read(key, 9)).toMatchObject({ latest: 2, row: undefined });

    await store.putVersion(version({ ...ns, name: "A" }, 1, "researcher"), null, LIMITS, []);
    await store.putVersion(version({ ...ns, name: "a" }, 1), null, LIMITS, []);
    await store.putVersion(version({ ...ns, agent: "a2", name: "OTHER" }, 1), null, LIMITS, []);
    expect((await store.list(ns)).map((s) => [s.name, s.scope, s.version])).toEqual([["A", "researcher", 1], ["B", "*", 2], ["a", "*", 1]]);
    const latest = await store.readLatest(ns, ["A", "B", "OTHER", "missing"]);
    expect([...latest.keys()].sort()).toEqual(["A", "B"]);
    expect(latest.get("B")!.row.version).toBe(2);
  });

  it("answers stale and changes nothing when another writer got there first", async () => {
    const { store } = await fresh();
    const key = { trustDomain: "hexr.local", tenant: "acme", agent: "a1", name: "RACE" };
    expect(await store.putVersion(version(key, 1), null, LIMITS, [entry("RACE")])).toBe("stored");
    const before = await store.auditHead();
    expect(await store.putVersion(version(key, 1), null, LIMITS, [entry("RACE")])).toBe("stale");
    expect(await store.putVersion(version(key, 3), 2, LIMITS, [entry("RACE")])).toBe("stale");
    expect(await store.putVersion(version(key, 2, "researcher"), 1, LIMITS, [entry("RACE")])).toBe("stale");
    expect(await store.deleteSecret(key, 7, [entry("RACE", 204)])).toBe("stale");
    expect(await store.head(key)).toEqual({ scope: "*", version: 1 });
    expect(await store.auditHead()).toEqual(before);
  });

  it("prunes old versions in the put's transaction and caps secrets per namespace", async () => {
    const { store } = await fresh();
    const ns = { trustDomain: "hexr.local", tenant: "acme", agent: "capped" };
    for (let n = 1; n <= 6; n++) expect(await store.putVersion(version({ ...ns, name: "P" }, n), n === 1 ? null : n - 1, LIMITS, [])).toBe("stored");
    const kept = await Promise.all([1, 2, 3, 4, 5, 6].map(async (n) => (await store.read({ ...ns, name: "P" }, n))!.row?.version));
    expect(kept).toEqual([undefined, undefined, undefined, 4, 5, 6]);
    for (const name of ["Q", "R", "S", "T"]) expect(await store.putVersion(version({ ...ns, name }, 1), null, LIMITS, [])).toBe("stored");
    expect(await store.putVersion(version({ ...ns, name: "U" }, 1), null, LIMITS, [entry("U")])).toBe("full");
    expect(await store.putVersion(version({ ...ns, agent: "other", name: "U" }, 1), null, LIMITS, [])).toBe("stored");
    expect(await store.deleteSecret({ ...ns, name: "P" }, 6, [entry("P", 204)])).toBe("deleted");
    expect(await store.read({ ...ns, name: "P" }, 5)).toBeUndefined();
    expect(await store.putVersion(version({ ...ns, name: "U" }, 1), null, LIMITS, [])).toBe("stored");
  });

  it("commits audit records with the writes and chains them", async () => {
    const { store } = await fresh();
    const key = { trustDomain: "hexr.local", tenant: "acme", agent: "a1", name: "AUDITED" };
    await store.putVersion(version(key, 1), null, LIMITS, [entry("AUDITED")]);
    await store.appendAudit([entry("X", 404), entry("Y", 404)]);
    await store.deleteSecret(key, 1, [entry("AUDITED", 204)]);
    const records = await store.auditRecords(0, 10);
    expect(records.map((r) => [r.seq, r.name, r.status])).toEqual([[1, "AUDITED", 201], [2, "X", 404], [3, "Y", 404], [4, "AUDITED", 204]]);
    expect(records).toEqual(chain(EMPTY_HEAD, records));
    expect(await store.auditHead()).toEqual({ seq: 4, hash: records[3].hash });
    expect(await verifyAudit(store, 2)).toEqual({ ok: true, records: 4, head: records[3].hash });
    expect((await store.auditRecords(2, 1)).map((r) => r.seq)).toEqual([3]);
  });

  it("chains audit records in commit order under concurrent writers, from two stores on one database", async () => {
    const { store, section } = await fresh();
    const { store: replica } = await open(section);
    opened.push(replica);
    const ns = { trustDomain: "hexr.local", tenant: "acme", agent: "busy" };
    const writers = Array.from({ length: 40 }, async (_, i) => {
      const target = i % 2 ? store : replica;
      const key = { ...ns, name: `S${i % 5}` };
      // Race for the next version of five secrets: each attempt decides from what it read.
      for (;;) {
        const head = await target.head(key);
        const outcome = await target.putVersion(version(key, (head?.version ?? 0) + 1), head?.version ?? null, { versionsKept: 100, maxSecrets: 100 }, [entry(key.name)]);
        if (outcome === "stored") return;
      }
    });
    const readers = Array.from({ length: 40 }, (_, i) => (i % 2 ? store : replica).appendAudit([entry(`R${i}`, 200), entry(`R${i}`, 200)]));
    await Promise.all([...writers, ...readers]);
    const result = await verifyAudit(store);
    expect(result).toMatchObject({ ok: true, records: 120 });
    for (let i = 0; i < 5; i++) {
      expect(await store.head({ ...ns, name: `S${i}` })).toEqual({ scope: "*", version: 8 });
    }
  });

  it("re-wraps data keys one row at a time, only when the row is still what was read", async () => {
    const { store } = await fresh();
    const ns = { trustDomain: "hexr.local", tenant: "acme", agent: "rot" };
    for (let i = 0; i < 5; i++) await store.putVersion(version({ ...ns, name: `K${i}` }, 1, "*", i < 3 ? "old" : "new"), null, LIMITS, []);
    expect(Object.fromEntries(await store.kekUsage())).toEqual({ old: 3, new: 2 });
    const first = await store.wrappedKeysNotUnder("new", null, 2);
    expect(first.map((r) => r.key.name)).toEqual(["K0", "K1"]);
    const rest = await store.wrappedKeysNotUnder("new", first[1], 2);
    expect(rest.map((r) => r.key.name)).toEqual(["K2"]);
    const replacement = randomBytes(61);
    expect(await store.replaceWrappedKey(first[0], "new", replacement)).toBe(true);
    expect(await store.replaceWrappedKey(first[0], "new", replacement)).toBe(false); // no longer what was read
    const row = (await store.read({ ...ns, name: "K0" }))!.row!;
    expect(row.sealed.kekId).toBe("new");
    expect(Buffer.compare(row.sealed.wrappedDek, replacement)).toBe(0);
    expect(await store.sampleWrappedBy("old", 5)).toHaveLength(2);
  });

  if (engine === "sqlite") {
    it("runs SQLite with a WAL journal and synchronous=FULL, in a 0600 file", async () => {
      const { section } = await fresh();
      const [mode] = await fixture.sql<{ journal_mode: string }>(section, "PRAGMA journal_mode");
      expect(mode.journal_mode).toBe("wal");
      const { statSync } = await import("node:fs");
      expect(statSync(section.path as string).mode & 0o777).toBe(0o600);
    });
  }
});
