// The keys this VM stored in L1, each with its credential's expiry, for the eviction tick and for
// revocation. They live in raw memory, outside the collector's heap: as managed strings, 100,000
// keys were walked by every collection and made each L1 hit slower (the benchmark's growth runs).
//
// One buffer of records, appended to and compacted in place: [u32 expires_at][u32 size][key bytes].
// Storing a key again appends a second record; the older one goes at its own expiry.
import { evictIfExpired, forgetL1Entry } from "./l1";

let records: usize = 0;
let used: usize = 0;
let capacity: usize = 0;
const HEADER: usize = 8;

export function rememberStoredKey(key: string, expiresAt: i64): void {
  const size = <usize>String.UTF8.byteLength(key);
  reserve(HEADER + size);
  store<u32>(records + used, <u32>expiresAt);
  store<u32>(records + used + 4, <u32>size);
  String.UTF8.encodeUnsafe(changetype<usize>(key), key.length, records + used + HEADER);
  used += HEADER + size;
}

function reserve(extra: usize): void {
  if (used + extra <= capacity) return;
  let grown: usize = capacity < 4096 ? 4096 : capacity * 2;
  while (grown < used + extra) grown *= 2;
  records = records == 0 ? heap.alloc(grown) : heap.realloc(records, grown);
  capacity = grown;
}

/** Empties the L1 entries whose credential expired; returns how many it emptied. */
export function evictExpiredKeys(nowSeconds: i64): i64 {
  let evicted: i64 = 0;
  let read: usize = 0;
  let write: usize = 0;
  while (read < used) {
    const expiresAt = <i64>load<u32>(records + read);
    const length = HEADER + <usize>load<u32>(records + read + 4);
    // Another worker may have stored a fresher entry under the key since: evictIfExpired checks.
    const drop = expiresAt <= nowSeconds;
    if (drop && evictIfExpired(String.UTF8.decodeUnsafe(records + read + HEADER, length - HEADER), nowSeconds)) evicted++;
    if (!drop) {
      if (write != read) memory.copy(records + write, records + read, length);
      write += length;
    }
    read += length;
  }
  used = write;
  return evicted;
}

/** Empties every L1 entry this VM stored under `prefix` (a revocation); returns how many. */
export function forgetKeysWithPrefix(prefix: string): i64 {
  const prefixBytes = String.UTF8.encode(prefix);
  const prefixSize = <usize>prefixBytes.byteLength;
  let forgotten: i64 = 0;
  let read: usize = 0;
  let write: usize = 0;
  while (read < used) {
    const size = <usize>load<u32>(records + read + 4);
    const length = HEADER + size;
    const key = records + read + HEADER;
    if (size >= prefixSize && memory.compare(key, changetype<usize>(prefixBytes), prefixSize) == 0) {
      forgetL1Entry(String.UTF8.decodeUnsafe(key, size));
      forgotten++;
    } else {
      if (write != read) memory.copy(records + write, records + read, length);
      write += length;
    }
    read += length;
  }
  used = write;
  return forgotten;
}
