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
