// The claims of the JWT-SVID that jwt_authn verified, read from its dynamic metadata in one host
// call. Envoy 1.40 returns a metadata map as proxy-wasm pairs (the format of header maps) of
// (claim name, serialized value), where a string is its bytes, a number 8 bytes of a
// little-endian double, and a list again pairs of (serialized item, "") (seen in real Envoy; the
// model is host-test/host/properties.ts). Only the claims the filter checks are read; every size is
// checked against the buffer, and anything that does not parse leaves the claim unset.

export class JwtClaims {
  sub: string | null = null;
  iss: string | null = null;
  aud: string[] = [];
  /** Epoch seconds; -1 when the token has none. */
  exp: f64 = -1;
}

/** The claims of a verified payload; null when the bytes are not pairs. */
export function readJwtClaims(payload: ArrayBuffer): JwtClaims | null {
  const base = changetype<usize>(payload);
  const size = <usize>payload.byteLength;
  const count = pairCount(base, size);
  if (count < 0) return null;
  const claims = new JwtClaims();
  let bytes = base + 4 + <usize>count * 8;
  for (let i: usize = 0; i < <usize>count; i++) {
    const nameSize = <usize>load<u32>(base + 4 + i * 8);
    const valueSize = <usize>load<u32>(base + 8 + i * 8);
    const value = bytes + nameSize + 1;
    if (isName(bytes, nameSize, "sub")) claims.sub = String.UTF8.decodeUnsafe(value, valueSize);
    else if (isName(bytes, nameSize, "iss")) claims.iss = String.UTF8.decodeUnsafe(value, valueSize);
    else if (isName(bytes, nameSize, "exp") && valueSize == 8) claims.exp = load<f64>(value);
    else if (isName(bytes, nameSize, "aud")) claims.aud = audiences(value, valueSize);
    bytes += nameSize + valueSize + 2;
  }
  return claims;
}

// The claims the filter checks, written in a fixed order into a static area: one token gives the
// same bytes whichever order Envoy lists its claims in (it walks a protobuf map, whose order is not
// stable between requests), so a repeat of the last token is recognised with one compare and no
// allocation. Layout: exp (8 bytes), then sub, iss and aud, each as a u32 size and its bytes (a
// missing claim is size 0xFFFFFFFF); aud is its serialized value, a string or a list.
const FINGERPRINT_SIZE: usize = 2048;
export const FINGERPRINT: usize = memory.data(<i32>FINGERPRINT_SIZE);
const MISSING: u32 = 0xffffffff;

/** Writes the fingerprint of a verified payload into FINGERPRINT; its size, or -1 (not pairs, or too large to keep). */
export function claimsFingerprint(payload: ArrayBuffer): i32 {
  const base = changetype<usize>(payload);
  const size = <usize>payload.byteLength;
  const count = pairCount(base, size);
  if (count < 0) return -1;
  let subAt: usize = 0, subSize: u32 = MISSING, issAt: usize = 0, issSize: u32 = MISSING, audAt: usize = 0, audSize: u32 = MISSING;
  let exp: u64 = 0;
  let bytes = base + 4 + <usize>count * 8;
  for (let i: usize = 0; i < <usize>count; i++) {
    const nameSize = <usize>load<u32>(base + 4 + i * 8);
    const valueSize = <usize>load<u32>(base + 8 + i * 8);
    const value = bytes + nameSize + 1;
    if (isName(bytes, nameSize, "sub")) { subAt = value; subSize = <u32>valueSize; }
    else if (isName(bytes, nameSize, "iss")) { issAt = value; issSize = <u32>valueSize; }
    else if (isName(bytes, nameSize, "aud")) { audAt = value; audSize = <u32>valueSize; }
    else if (isName(bytes, nameSize, "exp") && valueSize == 8) exp = load<u64>(value);
    bytes += nameSize + valueSize + 2;
  }
  const total: usize = 20 + sizeOf(subSize) + sizeOf(issSize) + sizeOf(audSize);
  if (total > FINGERPRINT_SIZE) return -1;
  store<u64>(FINGERPRINT, exp);
  let at = FINGERPRINT + 8;
  at = writeClaim(at, subAt, subSize);
  at = writeClaim(at, issAt, issSize);
  at = writeClaim(at, audAt, audSize);
  return <i32>(at - FINGERPRINT);
}

@inline
function sizeOf(size: u32): usize {
  return size == MISSING ? 0 : <usize>size;
}

function writeClaim(at: usize, from: usize, size: u32): usize {
  store<u32>(at, size);
  if (size == MISSING) return at + 4;
  memory.copy(at + 4, from, <usize>size);
  return at + 4 + <usize>size;
}

/** How many pairs `base[0, size)` holds, when every size it declares fits exactly; else -1. */
function pairCount(base: usize, size: usize): i32 {
  if (size < 4) return -1;
  const count = <usize>load<u32>(base);
  if (count > (size - 4) / 8) return -1;
  let total: usize = 4 + count * 8;
  for (let i: usize = 0; i < count; i++) {
    total += <usize>load<u32>(base + 4 + i * 8) + <usize>load<u32>(base + 8 + i * 8) + 2;
    if (total > size) return -1;
  }
  return total == size ? <i32>count : -1;
}

/** `aud` is one string, or a list serialized as pairs of (item, ""). */
function audiences(value: usize, size: usize): string[] {
  const out = new Array<string>();
  const count = pairCount(value, size);
  if (count <= 0) {
    out.push(String.UTF8.decodeUnsafe(value, size));
    return out;
  }
  let bytes = value + 4 + <usize>count * 8;
  for (let i: usize = 0; i < <usize>count; i++) {
    const itemSize = <usize>load<u32>(value + 4 + i * 8);
    const emptySize = <usize>load<u32>(value + 8 + i * 8);
    out.push(String.UTF8.decodeUnsafe(bytes, itemSize));
    bytes += itemSize + emptySize + 2;
  }
  return out;
}

function isName(data: usize, size: usize, name: string): bool {
  if (size != <usize>name.length) return false;
  for (let i: usize = 0; i < size; i++) {
    if (<i32>load<u8>(data + i) != name.charCodeAt(<i32>i)) return false;
  }
  return true;
}
