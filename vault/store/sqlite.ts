// The embedded engine (the default): one SQLite file through better-sqlite3, nothing else to run.
// WAL journal with synchronous=FULL: a commit returns only once its WAL frames are fsynced, so a
// put answered 201 survives a kill -9 of the vault and a power cut. better-sqlite3 is synchronous,
// so each transaction runs to completion on the event loop with nothing interleaved; BEGIN
// IMMEDIATE also takes SQLite's write lock up front, which serializes writers across processes
// (the server and `rotate-kek` or `audit` at the same time) instead of failing one of them midway.
import Database from "better-sqlite3";
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import path from "node:path";
import { chain, EMPTY_HEAD, type AuditEntry, type AuditHead, type AuditRecord } from "../audit.ts";
import { StoreUnavailable } from "../errors.ts";
import type { Namespace } from "../scope.ts";
import {
  SCHEMA_VERSION, schema, storedVersion, wrappedKeyRow, type ListedSecret, type NewVersion, type SecretKey, type SecretRead, type StoredVersion, type VaultStore,
  type VersionRow, type WrappedKeyRow, type WrappedRow, type WriteLimits,
} from "./store.ts";

const SCHEMA = schema({ bytes: "BLOB", bigint: "INTEGER" });

export function openSqliteStore(file: string): VaultStore {
  let db: Database.Database;
  try {
    // The database holds only ciphertext, but its names and audit are nobody else's business either.
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    closeSync(openSync(file, "a", 0o600));
    chmodSync(file, 0o600);
    db = new Database(file, { timeout: 5000 });
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.exec(SCHEMA);
    migrate(db);
  } catch (error) {
    throw new StoreUnavailable(`cannot open SQLite database ${file}: ${(error as Error).message}`, { cause: error });
  }
  return new SqliteStore(db);
}

function migrate(db: Database.Database): void {
  db.transaction(() => {
    const row = db.prepare("SELECT value FROM vault_meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
    if (row && Number(row.value) > SCHEMA_VERSION) {
      throw new Error(`the database has schema version ${row.value}, newer than this vault's ${SCHEMA_VERSION}`);
    }
    db.prepare("INSERT OR IGNORE INTO vault_meta (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
    db.prepare("INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, ?, ?)").run(EMPTY_HEAD.seq, EMPTY_HEAD.hash);
  }).immediate();
}

const KEY = "trust_domain = ? AND tenant = ? AND agent = ? AND name = ?";
const keyArgs = (key: SecretKey) => [key.trustDomain, key.tenant, key.agent, key.name];

class SqliteStore implements VaultStore {
  readonly engine = "sqlite" as const;
  private readonly statements;

  constructor(private readonly db: Database.Database) {
    const prepare = (sql: string) => db.prepare(sql);
    this.statements = {
      head: prepare(`SELECT scope, latest_version AS version FROM secrets WHERE ${KEY}`),
      version: prepare(`SELECT version, scope, created_at, nonce, ciphertext, kek_id, wrapped_dek FROM secret_versions WHERE ${KEY} AND version = ?`),
      list: prepare(`
        SELECT s.name, s.scope, s.latest_version AS version, v.created_at
        FROM secrets s JOIN secret_versions v
          ON v.trust_domain = s.trust_domain AND v.tenant = s.tenant AND v.agent = s.agent AND v.name = s.name AND v.version = s.latest_version
        WHERE s.trust_domain = ? AND s.tenant = ? AND s.agent = ?
        ORDER BY s.name`),
      count: prepare("SELECT count(*) AS n FROM secrets WHERE trust_domain = ? AND tenant = ? AND agent = ?"),
      insertSecret: prepare("INSERT INTO secrets (trust_domain, tenant, agent, name, scope, latest_version) VALUES (?, ?, ?, ?, ?, ?)"),
      updateSecret: prepare(`UPDATE secrets SET latest_version = ? WHERE ${KEY}`),
      insertVersion: prepare(`
        INSERT INTO secret_versions (trust_domain, tenant, agent, name, version, scope, created_at, nonce, ciphertext, kek_id, wrapped_dek)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      prune: prepare(`DELETE FROM secret_versions WHERE ${KEY} AND version <= ?`),
      deleteSecret: prepare(`DELETE FROM secrets WHERE ${KEY}`),
      auditHead: prepare("SELECT seq, hash FROM audit_head WHERE id = 1"),
      setAuditHead: prepare("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"),
      insertAudit: prepare(`
        INSERT INTO audit (seq, time, spiffe_id, caller, operation, name, scope, version, status, hash)
        VALUES (@seq, @time, @spiffe_id, @caller, @operation, @name, @scope, @version, @status, @hash)`),
      auditPage: prepare("SELECT seq, time, spiffe_id, caller, operation, name, scope, version, status, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"),
      kekUsage: prepare("SELECT kek_id, count(*) AS n FROM secret_versions GROUP BY kek_id"),
      wrappedNotUnder: prepare(`
        SELECT trust_domain, tenant, agent, name, version, scope, kek_id, wrapped_dek FROM secret_versions
        WHERE kek_id <> ? AND (trust_domain, tenant, agent, name, version) > (?, ?, ?, ?, ?)
        ORDER BY trust_domain, tenant, agent, name, version LIMIT ?`),
      sampleWrapped: prepare("SELECT trust_domain, tenant, agent, name, version, scope, kek_id, wrapped_dek FROM secret_versions WHERE kek_id = ? LIMIT ?"),
      replaceWrapped: prepare(`UPDATE secret_versions SET kek_id = ?, wrapped_dek = ? WHERE ${KEY} AND version = ? AND kek_id = ? AND wrapped_dek = ?`),
    };
  }

  async head(key: SecretKey) {
    return this.run(() => this.statements.head.get(...keyArgs(key)) as { scope: string; version: number } | undefined);
  }

  async read(key: SecretKey, version?: number): Promise<SecretRead | undefined> {
    return this.run(() =>
      this.db.transaction(() => {
        const head = this.statements.head.get(...keyArgs(key)) as { scope: string; version: number } | undefined;
        if (!head) return undefined;
        const row = this.statements.version.get(...keyArgs(key), version ?? head.version) as VersionRow | undefined;
        return { scope: head.scope, latest: head.version, row: row && storedVersion(row) };
      })(),
    );
  }

  async readLatest(namespace: Namespace, names: readonly string[]) {
    return this.run(() =>
      this.db.transaction(() => {
        const found = new Map<string, SecretRead & { row: StoredVersion }>();
        for (const name of names) {
          const key = { ...namespace, name };
          const head = this.statements.head.get(...keyArgs(key)) as { scope: string; version: number } | undefined;
          if (!head) continue;
          const row = this.statements.version.get(...keyArgs(key), head.version) as VersionRow | undefined;
          if (row) found.set(name, { scope: head.scope, latest: head.version, row: storedVersion(row) });
        }
        return found;
      })(),
    );
  }

  async list(namespace: Namespace): Promise<ListedSecret[]> {
    return this.run(() => {
      const rows = this.statements.list.all(namespace.trustDomain, namespace.tenant, namespace.agent) as { name: string; scope: string; version: number; created_at: string }[];
      return rows.map((row) => ({ name: row.name, scope: row.scope, version: row.version, createdAt: row.created_at }));
    });
  }

  async putVersion(next: NewVersion, expected: number | null, limits: WriteLimits, audit: readonly AuditEntry[]) {
    return this.write(() => {
      const head = this.statements.head.get(...keyArgs(next.key)) as { scope: string; version: number } | undefined;
      if ((head?.version ?? null) !== expected || next.version !== (expected ?? 0) + 1) return "stale" as const;
      if (!head) {
        const { n } = this.statements.count.get(next.key.trustDomain, next.key.tenant, next.key.agent) as { n: number };
        if (n >= limits.maxSecrets) return "full" as const;
        this.statements.insertSecret.run(...keyArgs(next.key), next.scope, next.version);
      } else {
        if (head.scope !== next.scope) return "stale" as const;
        this.statements.updateSecret.run(next.version, ...keyArgs(next.key));
      }
      const { nonce, ciphertext, kekId, wrappedDek } = next.sealed;
      this.statements.insertVersion.run(...keyArgs(next.key), next.version, next.scope, next.createdAt, nonce, ciphertext, kekId, wrappedDek);
      this.statements.prune.run(...keyArgs(next.key), next.version - limits.versionsKept);
      this.appendInTransaction(audit);
      return "stored" as const;
    });
  }

  async deleteSecret(key: SecretKey, expected: number, audit: readonly AuditEntry[]) {
    return this.write(() => {
      const head = this.statements.head.get(...keyArgs(key)) as { version: number } | undefined;
      if (head?.version !== expected) return "stale" as const;
      this.statements.deleteSecret.run(...keyArgs(key)); // versions go with it (ON DELETE CASCADE)
      this.appendInTransaction(audit);
      return "deleted" as const;
    });
  }

  async appendAudit(entries: readonly AuditEntry[]) {
    return this.write(() => this.appendInTransaction(entries));
  }

  async auditRecords(after: number, limit: number): Promise<AuditRecord[]> {
    return this.run(() => this.statements.auditPage.all(after, limit) as AuditRecord[]);
  }

  async auditHead(): Promise<AuditHead> {
    return this.run(() => (this.statements.auditHead.get() as AuditHead | undefined) ?? EMPTY_HEAD);
  }

  async kekUsage() {
    return this.run(() => {
      const rows = this.statements.kekUsage.all() as { kek_id: string; n: number }[];
      return new Map(rows.map((row) => [row.kek_id, row.n]));
    });
  }

  async wrappedKeysNotUnder(kekId: string, after: WrappedKeyRow | null, limit: number) {
    return this.run(() => {
      const cursor = after ? [...keyArgs(after.key), after.version] : ["", "", "", "", -1];
      return (this.statements.wrappedNotUnder.all(kekId, ...cursor, limit) as WrappedRow[]).map(wrappedKeyRow);
    });
  }

  async sampleWrappedBy(kekId: string, limit: number) {
    return this.run(() => (this.statements.sampleWrapped.all(kekId, limit) as WrappedRow[]).map(wrappedKeyRow));
  }

  async replaceWrappedKey(row: WrappedKeyRow, kekId: string, wrappedDek: Buffer) {
    return this.write(() => this.statements.replaceWrapped.run(kekId, wrappedDek, ...keyArgs(row.key), row.version, row.kekId, row.wrappedDek).changes === 1);
  }

  async close() {
    if (this.db.open) this.db.close();
  }

  private appendInTransaction(entries: readonly AuditEntry[]): AuditRecord[] {
    if (entries.length === 0) return [];
    const head = this.statements.auditHead.get() as AuditHead;
    const records = chain(head, entries);
    for (const record of records) this.statements.insertAudit.run(record);
    const last = records[records.length - 1];
    this.statements.setAuditHead.run(last.seq, last.hash);
    return records;
  }

  /** A write transaction, holding SQLite's write lock from its first statement (BEGIN IMMEDIATE). */
  private write<T>(work: () => T): Promise<T> {
    return this.run(() => this.db.transaction(work).immediate());
  }

  private async run<T>(work: () => T): Promise<T> {
    try {
      return work();
    } catch (error) {
      throw new StoreUnavailable(`SQLite: ${(error as Error).message}`, { cause: error });
    }
  }
}
