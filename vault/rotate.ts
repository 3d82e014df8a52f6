// KEK rotation: every data key wrapped by another KEK is unwrapped and wrapped again under the
// active one. Only kek_id and wrapped_dek change: the values' nonces and ciphertexts are not read
// or written, so a rotation never has a plaintext value in memory and cannot damage one.
// Safe while the vault serves (each row is replaced only if it is still what was read) and safe to
// run again after an interruption (rows already under the active KEK are not selected).
import type { Logger } from "pino";
import { rfc3339 } from "./audit.ts";
import { rewrapDek } from "./crypto/envelope.ts";
import type { KeyRing } from "./crypto/keyring.ts";
import { IntegrityError } from "./errors.ts";
import type { VaultStore, WrappedKeyRow } from "./store/store.ts";

export interface RotationResult {
  /** The KEK everything is now wrapped by. */
  active: string;
  rewrapped: number;
  /** Rows that changed (deleted, pruned, re-put) between reading and replacing: nothing to do for them. */
  skipped: number;
  /** Rows whose data key failed authentication under its KEK (damaged or moved): left as they were, named in the log. */
  failed: number;
  /** Versions per KEK id after the rotation. */
  usage: Record<string, number>;
}

const PAGE = 200;

export async function rotateKek(store: VaultStore, ring: KeyRing, log: Logger): Promise<RotationResult> {
  let rewrapped = 0;
  let skipped = 0;
  let failed = 0;
  let cursor: WrappedKeyRow | null = null;
  for (;;) {
    const rows: WrappedKeyRow[] = await store.wrappedKeysNotUnder(ring.active.id, cursor, PAGE);
    for (const row of rows) {
      const binding = { ...row.key, scope: row.scope, version: row.version };
      try {
        const next = await rewrapDek(row.wrappedDek, row.kekId, binding, ring);
        if (await store.replaceWrappedKey(row, next.kekId, next.wrappedDek)) rewrapped++;
        else skipped++;
      } catch (error) {
        // A KMS outage or a missing KEK stops the rotation (run it again later); one bad row does not.
        if (!(error instanceof IntegrityError)) throw error;
        failed++;
        log.error({ ...row.key, version: row.version, kek: row.kekId, reason: error.message }, "data key cannot be re-wrapped: it fails authentication");
      }
    }
    if (rows.length < PAGE) break;
    cursor = rows[rows.length - 1];
  }
  const usage = Object.fromEntries(await store.kekUsage());
  // The rotation is recorded in the audit chain like a request: name = the active KEK's id.
  await store.appendAudit([
    { time: rfc3339(), spiffe_id: null, caller: null, operation: "rotate_kek", name: ring.active.id, scope: null, version: null, status: failed === 0 ? 200 : 500 },
  ]);
  log.info({ active: ring.active.id, rewrapped, skipped, failed, usage }, "KEK rotation finished");
  return { active: ring.active.id, rewrapped, skipped, failed, usage };
}
