// PostgreSQL, for deployments that outgrow one machine: several vault replicas in front of one
// database (managed PostgreSQL, or a cluster with synchronous standbys). Every connection runs
// with synchronous_commit=on, so COMMIT returns once the WAL is flushed (and, with synchronous
// standbys configured, replicated): a 201 means the version is durable. Every write transaction
// first locks the audit head row (SELECT ... FOR UPDATE): writes from all replicas serialize on it,
// which is what keeps the audit chain and the version checks exact.
//
// The schema is created at start, idempotently, under an advisory lock so replicas starting
// together do not race.
import { readFileSync } from "node:fs";
import pg from "pg";
import { chain, EMPTY_HEAD, type AuditEntry, type AuditHead, type AuditRecord } from "../audit.ts";
import { StoreUnavailable } from "../errors.ts";
import type { Namespace } from "../scope.ts";
import type { StoreConfig } from "../config.ts";
import {
  SCHEMA_VERSION, schema, storedVersion, wrappedKeyRow, type ListedSecret, type NewVersion, type SecretKey, type SecretRead, type VaultStore,
  type VersionRow, type WrappedKeyRow, type WrappedRow, type WriteLimits,
} from "./store.ts";

type PostgresConfig = Extract<StoreConfig, { engine: "postgres" }>;

/** pg_advisory_xact_lock key for schema creation: "hexr" in ASCII. */
const SCHEMA_LOCK = 0x68657872;

const SCHEMA = schema({ bytes: "BYTEA", bigint: "BIGINT" });

const KEY = "trust_domain = $1 AND tenant = $2 AND agent = $3 AND name = $4";
const keyArgs = (key: SecretKey) => [key.trustDomain, key.tenant, key.agent, key.name];

export async function openPostgresStore(config: PostgresConfig, onBackgroundError: (error: Error) => void = () => {}): Promise<VaultStore> {
  const url = new URL(config.url);
  const password = config.password_file ? readPassword(config.password_file) : undefined;
  const pool = new pg.Pool({
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username),
    database: decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username),
    ...(password === undefined ? {} : { password }),
    ...(config.ca_file ? { ssl: { ca: readFileSync(config.ca_file), rejectUnauthorized: true } } : {}),
    max: config.pool_size,
    connectionTimeoutMillis: config.connect_timeout_ms,
    statement_timeout: config.statement_timeout_ms,
    query_timeout: config.statement_timeout_ms + 1000,
    // Said on every connection, whatever the server's or the role's default: a commit is durable before we answer.
    options: "-c synchronous_commit=on",
    application_name: "hexr-vault",
  });
  // An idle connection that breaks (the server restarts) must not crash the vault: the pool drops it.
  pool.on("error", (error) => onBackgroundError(error));
  const store = new PostgresStore(pool);
  try {
    await store.createSchema();
  } catch (error) {
    await pool.end().catch(() => {});
    throw error instanceof StoreUnavailable ? error : new StoreUnavailable((error as Error).message, { cause: error });
  }
  return store;
}

function readPassword(file: string): string {
  try {
    return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch {
    throw new StoreUnavailable(`the PostgreSQL password file ${file} cannot be read`);
  }
}

type Query = <R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, args?: unknown[]) => Promise<R[]>;

class PostgresStore implements VaultStore {
  readonly engine = "postgres" as const;

  constructor(private readonly pool: pg.Pool) {}

  async createSchema(): Promise<void> {
    await this.transaction(async (query) => {
      await query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
      await query(SCHEMA);
      const [meta] = await query<{ value: string }>("SELECT value FROM vault_meta WHERE key = 'schema_version'");
      if (meta && Number(meta.value) > SCHEMA_VERSION) {
        throw new StoreUnavailable(`the database has schema version ${meta.value}, newer than this vault's ${SCHEMA_VERSION}`);
      }
      await query("INSERT INTO vault_meta (key, value) VALUES ('schema_version', $1) ON CONFLICT DO NOTHING", [String(SCHEMA_VERSION)]);
      await query("INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT DO NOTHING", [EMPTY_HEAD.seq, EMPTY_HEAD.hash]);
      const [setting] = await query<{ synchronous_commit: string }>("SHOW synchronous_commit");
      // "on", "remote_write", "remote_apply" and "local" all flush the local WAL before COMMIT returns.
      if (setting.synchronous_commit === "off") {
        throw new StoreUnavailable("synchronous_commit is off for the vault's connections: a put could be answered before it is durable");
      }
    });
  }

  async head(key: SecretKey) {
    const [row] = await this.query<{ scope: string; version: number }>(`SELECT scope, latest_version AS version FROM secrets WHERE ${KEY}`, keyArgs(key));
    return row;
  }

  async read(key: SecretKey, version?: number): Promise<SecretRead | undefined> {
    // One statement: the head and the version are read from one snapshot.
    const [row] = await this.query<{ secret_scope: string; latest: number } & Partial<VersionRow>>(
      `SELECT s.scope AS secret_scope, s.latest_version AS latest,
              v.version, v.scope, v.created_at, v.nonce, v.ciphertext, v.kek_id, v.wrapped_dek
       FROM secrets s LEFT JOIN secret_versions v
         ON v.trust_domain = s.trust_domain AND v.tenant = s.tenant AND v.agent = s.agent AND v.name = s.name
        AND v.version = COALESCE($5::integer, s.latest_version)
       WHERE s.trust_domain = $1 AND s.tenant = $2 AND s.agent = $3 AND s.name = $4`,
      [...keyArgs(key), version ?? null],
    );
    if (!row) return undefined;
    return { scope: row.secret_scope, latest: row.latest, row: row.version === null || row.version === undefined ? undefined : storedVersion(row as VersionRow) };
  }

  async readLatest(namespace: Namespace, names: readonly string[]) {
    const rows = await this.query<{ name: string; secret_scope: string; latest: number } & VersionRow>(
      `SELECT s.name, s.scope AS secret_scope, s.latest_version AS latest,
              v.version, v.scope, v.created_at, v.nonce, v.ciphertext, v.kek_id, v.wrapped_dek
       FROM secrets s JOIN secret_versions v
         ON v.trust_domain = s.trust_domain AND v.tenant = s.tenant AND v.agent = s.agent AND v.name = s.name AND v.version = s.latest_version
       WHERE s.trust_domain = $1 AND s.tenant = $2 AND s.agent = $3 AND s.name = ANY($4::text[])`,
      [namespace.trustDomain, namespace.tenant, namespace.agent, names],
    );
    return new Map(rows.map((row) => [row.name, { scope: row.secret_scope, latest: row.latest, row: storedVersion(row) }]));
  }

  async list(namespace: Namespace): Promise<ListedSecret[]> {
    const rows = await this.query<{ name: string; scope: string; version: number; created_at: string }>(
      `SELECT s.name, s.scope, s.latest_version AS version, v.created_at
       FROM secrets s JOIN secret_versions v
         ON v.trust_domain = s.trust_domain AND v.tenant = s.tenant AND v.agent = s.agent AND v.name = s.name AND v.version = s.latest_version
       WHERE s.trust_domain = $1 AND s.tenant = $2 AND s.agent = $3
       ORDER BY s.name COLLATE "C"`,
      [namespace.trustDomain, namespace.tenant, namespace.agent],
    );
    return rows.map((row) => ({ name: row.name, scope: row.scope, version: row.version, createdAt: row.created_at }));
  }

  async putVersion(next: NewVersion, expected: number | null, limits: WriteLimits, audit: readonly AuditEntry[]) {
    return this.write(async (query) => {
      const [head] = await query<{ scope: string; version: number }>(`SELECT scope, latest_version AS version FROM secrets WHERE ${KEY}`, keyArgs(next.key));
      if ((head?.version ?? null) !== expected || next.version !== (expected ?? 0) + 1) return "stale" as const;
      if (!head) {
        const [{ n }] = await query<{ n: number }>("SELECT count(*)::integer AS n FROM secrets WHERE trust_domain = $1 AND tenant = $2 AND agent = $3", keyArgs(next.key).slice(0, 3));
        if (n >= limits.maxSecrets) return "full" as const;
        await query("INSERT INTO secrets (trust_domain, tenant, agent, name, scope, latest_version) VALUES ($1, $2, $3, $4, $5, $6)", [...keyArgs(next.key), next.scope, next.version]);
      } else {
        if (head.scope !== next.scope) return "stale" as const;
        await query(`UPDATE secrets SET latest_version = $5 WHERE ${KEY}`, [...keyArgs(next.key), next.version]);
      }
      const { nonce, ciphertext, kekId, wrappedDek } = next.sealed;
      await query(
        `INSERT INTO secret_versions (trust_domain, tenant, agent, name, version, scope, created_at, nonce, ciphertext, kek_id, wrapped_dek)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [...keyArgs(next.key), next.version, next.scope, next.createdAt, nonce, ciphertext, kekId, wrappedDek],
      );
      await query(`DELETE FROM secret_versions WHERE ${KEY} AND version <= $5`, [...keyArgs(next.key), next.version - limits.versionsKept]);
      return "stored" as const;
    }, audit);
  }

  async deleteSecret(key: SecretKey, expected: number, audit: readonly AuditEntry[]) {
    return this.write(async (query) => {
      const [head] = await query<{ version: number }>(`SELECT latest_version AS version FROM secrets WHERE ${KEY}`, keyArgs(key));
      if (head?.version !== expected) return "stale" as const;
      await query(`DELETE FROM secrets WHERE ${KEY}`, keyArgs(key)); // versions go with it (ON DELETE CASCADE)
      return "deleted" as const;
    }, audit);
  }

  async appendAudit(entries: readonly AuditEntry[]): Promise<AuditRecord[]> {
    let records: AuditRecord[] = [];
    await this.transaction(async (query) => {
      records = await this.appendInTransaction(query, await this.lockHead(query), entries);
    });
    return records;
  }

  async auditRecords(after: number, limit: number): Promise<AuditRecord[]> {
    const rows = await this.query<AuditRecord & { seq: string }>(
      "SELECT seq, time, spiffe_id, caller, operation, name, scope, version, status, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
      [after, limit],
    );
    return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
  }

  async auditHead(): Promise<AuditHead> {
    const [row] = await this.query<{ seq: string; hash: string }>("SELECT seq, hash FROM audit_head WHERE id = 1");
    return row ? { seq: Number(row.seq), hash: row.hash } : EMPTY_HEAD;
  }

  async kekUsage() {
    const rows = await this.query<{ kek_id: string; n: number }>("SELECT kek_id, count(*)::integer AS n FROM secret_versions GROUP BY kek_id");
    return new Map(rows.map((row) => [row.kek_id, row.n]));
  }

  async wrappedKeysNotUnder(kekId: string, after: WrappedKeyRow | null, limit: number) {
    const cursor = after ? [...keyArgs(after.key), after.version] : ["", "", "", "", -1];
    const rows = await this.query<WrappedRow>(
      `SELECT trust_domain, tenant, agent, name, version, scope, kek_id, wrapped_dek FROM secret_versions
       WHERE kek_id <> $1 AND (trust_domain, tenant, agent, name, version) > ($2, $3, $4, $5, $6)
       ORDER BY trust_domain, tenant, agent, name, version LIMIT $7`,
      [kekId, ...cursor, limit],
    );
    return rows.map(wrappedKeyRow);
  }

  async sampleWrappedBy(kekId: string, limit: number) {
    const rows = await this.query<WrappedRow>(
      "SELECT trust_domain, tenant, agent, name, version, scope, kek_id, wrapped_dek FROM secret_versions WHERE kek_id = $1 LIMIT $2",
      [kekId, limit],
    );
    return rows.map(wrappedKeyRow);
  }

  async replaceWrappedKey(row: WrappedKeyRow, kekId: string, wrappedDek: Buffer) {
    const result = await this.query<{ version: number }>(
      `UPDATE secret_versions SET kek_id = $7, wrapped_dek = $8
       WHERE ${KEY} AND version = $5 AND kek_id = $6 AND wrapped_dek = $9 RETURNING version`,
      [...keyArgs(row.key), row.version, row.kekId, kekId, wrappedDek, row.wrappedDek],
    );
    return result.length === 1;
  }

  async close() {
    await this.pool.end();
  }

  private async lockHead(query: Query): Promise<AuditHead> {
    const [row] = await query<{ seq: string; hash: string }>("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE");
    return { seq: Number(row.seq), hash: row.hash };
  }

  private async appendInTransaction(query: Query, head: AuditHead, entries: readonly AuditEntry[]): Promise<AuditRecord[]> {
    if (entries.length === 0) return [];
    const records = chain(head, entries);
    for (const r of records) {
      await query(
        "INSERT INTO audit (seq, time, spiffe_id, caller, operation, name, scope, version, status, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [r.seq, r.time, r.spiffe_id, r.caller, r.operation, r.name, r.scope, r.version, r.status, r.hash],
      );
    }
    const last = records[records.length - 1];
    await query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", [last.seq, last.hash]);
    return records;
  }

  /** A write: the audit head locked first (serializing every writer), `work`, then `audit` appended only when `work` changed something. */
  private async write<T extends string>(work: (query: Query) => Promise<T>, audit: readonly AuditEntry[]): Promise<T> {
    let outcome!: T;
    await this.transaction(async (query) => {
      const head = await this.lockHead(query);
      outcome = await work(query);
      if (outcome === "stored" || outcome === "deleted") await this.appendInTransaction(query, head, audit);
    });
    return outcome;
  }

  private async transaction(work: (query: Query) => Promise<void>): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw new StoreUnavailable(`PostgreSQL: ${(error as Error).message}`, { cause: error });
    }
    const query: Query = async (sql, args) => (await client.query(sql, args)).rows;
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      await work(query);
      await client.query("COMMIT");
    } catch (error) {
      broken = error as Error;
      await client.query("ROLLBACK").catch(() => {});
      throw error instanceof StoreUnavailable ? error : new StoreUnavailable(`PostgreSQL: ${(error as Error).message}`, { cause: error });
    } finally {
      // A connection that failed mid-transaction is not given back to the pool.
      client.release(broken);
    }
  }

  private async query<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, args)).rows;
    } catch (error) {
      throw new StoreUnavailable(`PostgreSQL: ${(error as Error).message}`, { cause: error });
    }
  }
}
