// What the vault needs from storage, whichever engine holds it (sqlite.ts: embedded, the default;
// postgres.ts: for replicas and managed databases). Both run the same test suite
// (vault/test/store.test.ts).
//
// Rules every engine keeps:
// - A write (put, delete) and its audit record commit in ONE transaction, durably (the engine's
//   fsync-on-commit setting), before the vault answers; a failure leaves nothing behind.
// - Writes are serialized: each write transaction first takes the audit head (SQLite: BEGIN
//   IMMEDIATE; PostgreSQL: SELECT ... FOR UPDATE on the head row), so audit records chain in commit
//   order and a secret's version check cannot race another writer, in this process or another.
// - Optimistic versions: a put or delete names the version it decided on (null: the secret must not
//   exist); if another writer got there first the store answers "stale" and changes nothing, and
//   the vault decides again.
// - Any failure of the engine (connection lost, disk full, timeout) is thrown as StoreUnavailable.
import type { AuditEntry, AuditHead, AuditRecord } from "../audit.ts";
import type { SealedValue } from "../crypto/envelope.ts";
import type { Namespace } from "../scope.ts";

export interface SecretKey extends Namespace {
  readonly name: string;
}

export interface StoredVersion {
  version: number;
  /** The secret's scope when this version was written (the same for every version: scope never changes). */
  scope: string;
  createdAt: string;
  sealed: SealedValue;
}

export interface SecretRead {
  /** The secret's scope. */
  scope: string;
  /** Its newest version. */
  latest: number;
  /** The version asked for; undefined when that version is gone (pruned) or never was. */
  row: StoredVersion | undefined;
}

export interface ListedSecret {
  name: string;
  scope: string;
  version: number;
  createdAt: string;
}

export interface NewVersion {
  key: SecretKey;
  scope: string;
  version: number;
  createdAt: string;
  sealed: SealedValue;
}

export interface WriteLimits {
  /** Versions kept per secret: older ones are deleted in the put's transaction. */
  versionsKept: number;
  /** Secrets per namespace: a put that would create one more is refused ("full"). */
  maxSecrets: number;
}

/** A version's wrapped data key, as KEK rotation sees it: the binding, the KEK id and the wrapped bytes, never the value. */
export interface WrappedKeyRow {
  key: SecretKey;
  version: number;
  scope: string;
  kekId: string;
  wrappedDek: Buffer;
}

export interface VaultStore {
  readonly engine: "sqlite" | "postgres";
  /** The secret's scope and newest version; undefined when it does not exist. */
  head(key: SecretKey): Promise<{ scope: string; version: number } | undefined>;
  /** A version (the newest without `version`); undefined when the secret does not exist. */
  read(key: SecretKey, version?: number): Promise<SecretRead | undefined>;
  /** The newest version of each of `names` that exists in the namespace. */
  readLatest(namespace: Namespace, names: readonly string[]): Promise<Map<string, SecretRead & { row: StoredVersion }>>;
  /** Every secret of the namespace with its newest version, sorted by name. */
  list(namespace: Namespace): Promise<ListedSecret[]>;
  /**
   * Inserts version `next.version` (which must be `expected` + 1, or 1 with `expected` null),
   * prunes old versions and appends `audit`, in one transaction.
   */
  putVersion(next: NewVersion, expected: number | null, limits: WriteLimits, audit: readonly AuditEntry[]): Promise<"stored" | "stale" | "full">;
  /** Deletes every version, if the newest is still `expected`, and appends `audit`, in one transaction. */
  deleteSecret(key: SecretKey, expected: number, audit: readonly AuditEntry[]): Promise<"deleted" | "stale">;
  /** Appends records in one transaction (requests that wrote nothing). */
  appendAudit(entries: readonly AuditEntry[]): Promise<AuditRecord[]>;
  /** Records with seq > `after`, in seq order, at most `limit`. */
  auditRecords(after: number, limit: number): Promise<AuditRecord[]>;
  auditHead(): Promise<AuditHead>;
  /** How many versions each KEK id wrapped. */
  kekUsage(): Promise<Map<string, number>>;
  /** Versions whose data key is wrapped by a KEK other than `kekId`, in key order after `after` (keyset paging). */
  wrappedKeysNotUnder(kekId: string, after: WrappedKeyRow | null, limit: number): Promise<WrappedKeyRow[]>;
  /** Up to `limit` versions wrapped by `kekId`, to check at start that the configured key is the one that wrapped them. */
  sampleWrappedBy(kekId: string, limit: number): Promise<WrappedKeyRow[]>;
  /** Replaces one wrapped data key if it is still `row`'s; nothing else of the row changes. */
  replaceWrappedKey(row: WrappedKeyRow, kekId: string, wrappedDek: Buffer): Promise<boolean>;
  close(): Promise<void>;
}

/** Schema version both engines record; a newer one in the database stops an older vault. */
export const SCHEMA_VERSION = 1;

/** The tables, one definition for both engines: only the names of two column types differ. */
export function schema(types: { bytes: string; bigint: string }): string {
  const { bytes, bigint } = types;
  return `
CREATE TABLE IF NOT EXISTS vault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (
  trust_domain TEXT NOT NULL, tenant TEXT NOT NULL, agent TEXT NOT NULL, name TEXT NOT NULL,
  scope TEXT NOT NULL,
  latest_version INTEGER NOT NULL,
  PRIMARY KEY (trust_domain, tenant, agent, name)
);
CREATE TABLE IF NOT EXISTS secret_versions (
  trust_domain TEXT NOT NULL, tenant TEXT NOT NULL, agent TEXT NOT NULL, name TEXT NOT NULL,
  version INTEGER NOT NULL,
  scope TEXT NOT NULL,
  created_at TEXT NOT NULL,
  nonce ${bytes} NOT NULL,
  ciphertext ${bytes} NOT NULL,
  kek_id TEXT NOT NULL,
  wrapped_dek ${bytes} NOT NULL,
  PRIMARY KEY (trust_domain, tenant, agent, name, version),
  FOREIGN KEY (trust_domain, tenant, agent, name) REFERENCES secrets (trust_domain, tenant, agent, name) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS secret_versions_by_kek ON secret_versions (kek_id);
CREATE TABLE IF NOT EXISTS audit (
  seq ${bigint} PRIMARY KEY,
  time TEXT NOT NULL,
  spiffe_id TEXT,
  caller TEXT,
  operation TEXT NOT NULL,
  name TEXT,
  scope TEXT,
  version INTEGER,
  status INTEGER NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq ${bigint} NOT NULL, hash TEXT NOT NULL)`;
}

/** A version row as both engines return it (snake_case columns). */
export interface VersionRow {
  version: number;
  scope: string;
  created_at: string;
  nonce: Buffer;
  ciphertext: Buffer;
  kek_id: string;
  wrapped_dek: Buffer;
}

export interface WrappedRow {
  trust_domain: string;
  tenant: string;
  agent: string;
  name: string;
  version: number;
  scope: string;
  kek_id: string;
  wrapped_dek: Buffer;
}

export function storedVersion(row: VersionRow): StoredVersion {
  return {
    version: row.version,
    scope: row.scope,
    createdAt: row.created_at,
    sealed: { nonce: row.nonce, ciphertext: row.ciphertext, kekId: row.kek_id, wrappedDek: row.wrapped_dek },
  };
}

export function wrappedKeyRow(row: WrappedRow): WrappedKeyRow {
  return {
    key: { trustDomain: row.trust_domain, tenant: row.tenant, agent: row.agent, name: row.name },
    version: row.version,
    scope: row.scope,
    kekId: row.kek_id,
    wrappedDek: row.wrapped_dek,
  };
}
