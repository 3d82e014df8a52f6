// The audit log: one record for every request the vault answers, written before the answer (in the
// same transaction as the write it records, for puts and deletes), never holding a value.
//
// Records form a hash chain: hash = SHA-256(prev_hash || canonical JSON of the record), prev_hash
// being the previous record's hash as 32 raw bytes (32 zero bytes before the first record). The
// canonical JSON is the record's fields in this fixed order, compact (JSON.stringify, no spaces):
//   {"seq","time","spiffe_id","caller","operation","name","scope","version","status"}
// with null for a field that does not apply. Changing, removing or reordering a record breaks the
// chain at that record; removing records from the end is caught by the head (the last seq and
// hash), which the store keeps in a row of its own, updated in the same transaction as the records.
import { createHash } from "node:crypto";

export interface AuditEntry {
  /** RFC 3339 UTC, milliseconds. */
  time: string;
  /** The identity the request was for; when it had none (refused before one was established), the mTLS caller's. */
  spiffe_id: string | null;
  /** The mTLS caller (the sidecar's X.509-SVID); null for the vault's own CLI. */
  caller: string | null;
  operation: AuditOperation;
  name: string | null;
  scope: string | null;
  version: number | null;
  status: number;
}

export type AuditOperation =
  | "put" | "get" | "list" | "delete" | "batch" | "audit_list" | "audit_verify" | "rotate_kek" | "unknown";

export interface AuditRecord extends AuditEntry {
  seq: number;
  /** Hex SHA-256. */
  hash: string;
}

export interface AuditHead {
  /** 0 before the first record. */
  seq: number;
  hash: string;
}

export const GENESIS_HASH = "0".repeat(64);
export const EMPTY_HEAD: AuditHead = { seq: 0, hash: GENESIS_HASH };

export function canonicalJson(record: AuditEntry & { seq: number }): string {
  return JSON.stringify({
    seq: record.seq,
    time: record.time,
    spiffe_id: record.spiffe_id,
    caller: record.caller,
    operation: record.operation,
    name: record.name,
    scope: record.scope,
    version: record.version,
    status: record.status,
  });
}

export function chainHash(prevHash: string, record: AuditEntry & { seq: number }): string {
  return createHash("sha256").update(Buffer.from(prevHash, "hex")).update(canonicalJson(record), "utf8").digest("hex");
}

/** `entries` as the records that follow `head` (the stores call this inside their write transaction). */
export function chain(head: AuditHead, entries: readonly AuditEntry[]): AuditRecord[] {
  const records: AuditRecord[] = [];
  let { seq, hash } = head;
  for (const entry of entries) {
    seq += 1;
    hash = chainHash(hash, { ...entry, seq });
    records.push({ seq, ...pick(entry), hash });
  }
  return records;
}

/** Only the record's fields, whatever else the object carries. */
function pick(entry: AuditEntry): AuditEntry {
  const { time, spiffe_id, caller, operation, name, scope, version, status } = entry;
  return { time, spiffe_id, caller, operation, name, scope, version, status };
}

export type VerifyResult =
  | { ok: true; records: number; head: string }
  | { ok: false; broken_at: number; reason: string };

/** What verification reads: the records in seq order, a page at a time, and the head. */
export interface AuditSource {
  auditRecords(after: number, limit: number): Promise<AuditRecord[]>;
  auditHead(): Promise<AuditHead>;
}

/**
 * Walks the whole chain, to its end. The head is read first, so it must name a record the walk
 * passes (records appended during the walk lie beyond it): a head beyond the last record means
 * records were removed from the end.
 */
export async function verifyAudit(source: AuditSource, pageSize = 1000): Promise<VerifyResult> {
  const head = await source.auditHead();
  let expected = 1;
  let hash = GENESIS_HASH;
  let hashAtHead = head.seq === 0 ? GENESIS_HASH : undefined;
  for (;;) {
    const page = await source.auditRecords(expected - 1, pageSize);
    for (const record of page) {
      if (record.seq !== expected) return { ok: false, broken_at: expected, reason: `record ${expected} is missing` };
      if (chainHash(hash, record) !== record.hash) {
        return { ok: false, broken_at: record.seq, reason: `record ${record.seq} does not match its hash: it, or the hash, was changed` };
      }
      hash = record.hash;
      if (record.seq === head.seq) hashAtHead = hash;
      expected += 1;
    }
    if (page.length < pageSize) break;
  }
  const last = expected - 1;
  if (last < head.seq) {
    return { ok: false, broken_at: last + 1, reason: `records ${last + 1} to ${head.seq} are missing (the head is at ${head.seq})` };
  }
  if (hashAtHead !== head.hash) return { ok: false, broken_at: head.seq, reason: `record ${head.seq} is not the one the head recorded` };
  return { ok: true, records: last, head: hash };
}

/** Now, as audit records and created_at show it. */
export function rfc3339(ms: number = Date.now()): string {
  return new Date(ms).toISOString();
}
