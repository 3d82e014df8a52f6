// One cached credential, as stored in L1 (shared data) and L2 (the bridge): "{expires_at}\n{body}".
// The body is the injector's reply byte for byte, so every tier answers exactly what L3 answered.

export class CacheEntry {
  constructor(public expiresAt: i64, public body: Uint8Array) {}
}

const MAX_EXPIRY_DIGITS = 12;

export function encodeEntry(expiresAt: i64, body: Uint8Array): Uint8Array {
  const prefix = Uint8Array.wrap(String.UTF8.encode(expiresAt.toString() + "\n"));
  const entry = new Uint8Array(prefix.length + body.length);
  entry.set(prefix);
  entry.set(body, prefix.length);
  return entry;
}

/** Reads an entry without copying its body; anything malformed (say, garbage from L2) is null. */
export function decodeEntry(data: ArrayBuffer): CacheEntry | null {
  const size = data.byteLength;
  const base = changetype<usize>(data);
  let expiresAt: i64 = 0;
  let digits = 0;
  while (digits < size && digits <= MAX_EXPIRY_DIGITS) {
    const c = <i32>load<u8>(base + digits);
    if (c == 0x0a) break;
    if (c < 0x30 || c > 0x39) return null;
    expiresAt = expiresAt * 10 + (c - 0x30);
    digits++;
  }
  if (digits == 0 || digits > MAX_EXPIRY_DIGITS || digits + 1 >= size || load<u8>(base + digits) != 0x0a) return null;
  return new CacheEntry(expiresAt, Uint8Array.wrap(data, digits + 1, size - digits - 1));
}

/** Served only while now < expires_at − buffer: never an expired or nearly expired credential. */
export function isServable(expiresAt: i64, nowSeconds: i64, bufferSeconds: i64): bool {
  return nowSeconds < expiresAt - bufferSeconds;
}

/** Parses an epoch-seconds value such as the x-hexr-expires-at header; 0 when unusable. */
export function parseEpochSeconds(text: string): i64 {
  if (text.length == 0 || text.length > MAX_EXPIRY_DIGITS) return 0;
  let value: i64 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return 0;
    value = value * 10 + (c - 0x30);
  }
  return value;
}

export function cacheKey(spiffeId: string, service: string, region: string): string {
  return "cred:" + spiffeId + ":" + service + ":" + region;
}
