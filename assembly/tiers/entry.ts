// One cached credential, as stored in L1 (shared data) and L2 (the bridge):
// "{expires_at},{stored_at}\n{body}" (",{stored_at}" optional). The body is the injector's reply
// byte for byte, so every tier answers exactly what L3 answered; stored_at lets refresh-ahead
// tell how much of the entry's servable life is left.

import { decimal, decimalEnd, scanDecimal } from "../util/ascii";

export class CacheEntry {
  constructor(public expiresAt: i64, public storedAt: i64, public body: Uint8Array) {}
}

export function encodeEntry(expiresAt: i64, storedAt: i64, body: Uint8Array): Uint8Array {
  const prefix = Uint8Array.wrap(String.UTF8.encode(decimal(expiresAt) + "," + decimal(storedAt) + "\n"));
  const entry = new Uint8Array(prefix.length + body.length);
  entry.set(prefix);
  entry.set(body, prefix.length);
  return entry;
}

/** Reads an entry without copying its body; anything malformed (say, garbage from L2) is null. */
export function decodeEntry(data: ArrayBuffer): CacheEntry | null {
  const size = data.byteLength;
  const base = changetype<usize>(data);
  const expiresAt = scanDecimal(base, 0, size);
  if (expiresAt < 0) return null;
  let offset = decimalEnd;
  let storedAt: i64 = 0;
  if (offset < size && load<u8>(base + offset) == 0x2c) {
    storedAt = scanDecimal(base, offset + 1, size);
    if (storedAt < 0) return null;
    offset = decimalEnd;
  }
  if (offset + 1 >= size || load<u8>(base + offset) != 0x0a) return null;
  return new CacheEntry(expiresAt, storedAt, Uint8Array.wrap(data, offset + 1, size - offset - 1));
}

/** Served only while now < expires_at − buffer: never an expired or nearly expired credential. */
export function isServable(expiresAt: i64, nowSeconds: i64, bufferSeconds: i64): bool {
  return nowSeconds < expiresAt - bufferSeconds;
}

/**
 * True in the last `percent` % of the entry's servable life, when a background re-exchange
 * should start so that a busy agent never meets a miss. Entries without stored_at never qualify.
 */
export function isDueForRefresh(entry: CacheEntry, nowSeconds: i64, bufferSeconds: i64, percent: i64): bool {
  if (percent <= 0 || entry.storedAt <= 0) return false;
  const servableUntil = entry.expiresAt - bufferSeconds;
  const life = servableUntil - entry.storedAt;
  return life > 0 && (servableUntil - nowSeconds) * 100 < life * percent;
}
