// L1: proxy shared data, visible to every worker thread of this Envoy. Lookups never leave the
// process; writes go through compare-and-swap so concurrent workers cannot interleave an entry.
import { getSharedData, setSharedData } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";
import { CacheEntry, decodeEntry, isServable } from "./entry";

const CAS_ATTEMPTS = 3;

export function lookupL1(key: string, nowSeconds: i64, bufferSeconds: i64): CacheEntry | null {
  const entry = readL1(key);
  return entry !== null && isServable(entry.expiresAt, nowSeconds, bufferSeconds) ? entry : null;
}

/** The entry whatever its age: for stale-if-error, which still never passes the real expiry. */
export function readL1(key: string): CacheEntry | null {
  const stored = getSharedData(key);
  return stored !== null ? decodeEntry(stored.data) : null;
}

const EMPTY = new Uint8Array(0);

/**
 * Clears the entry if its credential has expired. The ABI (0.2.1) cannot delete a key, so the
 * value is emptied: the body's memory is freed and only the key remains.
 */
export function evictIfExpired(key: string, nowSeconds: i64): bool {
  const stored = getSharedData(key);
  if (stored === null) return true;
  const entry = decodeEntry(stored.data);
  if (entry !== null && nowSeconds < entry.expiresAt) return false;
  if (stored.data.byteLength > 0) setSharedData(key, EMPTY, stored.cas);
  return true;
}

export const enum Stored { Not, Replaced, Created }

/** Stores an entry unless a worker already holds one that lives at least as long; Created: a new key. */
export function storeL1(key: string, entry: Uint8Array, expiresAt: i64): Stored {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = getSharedData(key);
    let cas: u32 = 0;
    if (current !== null) {
      const existing = decodeEntry(current.data);
      if (existing !== null && existing.expiresAt >= expiresAt) return Stored.Not;
      cas = current.cas;
    }
    const status = setSharedData(key, entry, cas);
    if (status == Status.Ok) return current === null ? Stored.Created : Stored.Replaced;
    if (status != Status.CasMismatch) return Stored.Not;
  }
  return Stored.Not;
}

/** Whether shared data holds the key at all (an emptied entry still does: keys cannot be deleted). */
export function hasL1Key(key: string): bool {
  return getSharedData(key) !== null;
}

/** Empties the entry whatever its age (revocation). */
export function forgetL1Entry(key: string): void {
  if (getSharedData(key) !== null) setSharedData(key, EMPTY, 0);
}
