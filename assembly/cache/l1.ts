// L1: proxy shared data, visible to every worker thread of this Envoy. Lookups never leave the
// process; writes go through compare-and-swap so concurrent workers cannot interleave an entry.
import { getSharedData, setSharedData } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";
import { CacheEntry, decodeEntry, isServable } from "./entry";

const CAS_ATTEMPTS = 3;

export function lookupL1(key: string, nowSeconds: i64, bufferSeconds: i64): CacheEntry | null {
  const stored = getSharedData(key);
  if (stored === null) return null;
  const entry = decodeEntry(stored.data);
  if (entry === null || !isServable(entry.expiresAt, nowSeconds, bufferSeconds)) return null;
  return entry;
}

/** Stores an entry unless a worker already holds one that lives at least as long. */
export function storeL1(key: string, entry: Uint8Array, expiresAt: i64): bool {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = getSharedData(key);
    let cas: u32 = 0;
    if (current !== null) {
      const existing = decodeEntry(current.data);
      if (existing !== null && existing.expiresAt >= expiresAt) return false;
      cas = current.cas;
    }
    const status = setSharedData(key, entry, cas);
    if (status == Status.Ok) return true;
    if (status != Status.CasMismatch) return false;
  }
  return false;
}
