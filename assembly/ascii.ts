// Checks on header values as the host returned them (UTF-8 bytes), without turning them into
// strings: the request envelope is checked on every exchange, so these stay allocation-free.

function byteAt(bytes: ArrayBuffer, index: i32): i32 {
  return <i32>load<u8>(changetype<usize>(bytes) + <usize>index);
}

function lowered(c: i32): i32 {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/** bytes == text (ASCII text). */
export function bytesEqual(bytes: ArrayBuffer | null, text: string): bool {
  if (bytes === null || bytes.byteLength != text.length) return false;
  for (let i = 0; i < text.length; i++) {
    if (byteAt(bytes, i) != text.charCodeAt(i)) return false;
  }
  return true;
}

/** The part of a request path before '?' equals `path`. */
export function pathMatches(bytes: ArrayBuffer | null, path: string): bool {
  if (bytes === null || bytes.byteLength < path.length) return false;
  for (let i = 0; i < path.length; i++) {
    if (byteAt(bytes, i) != path.charCodeAt(i)) return false;
  }
  return bytes.byteLength == path.length || byteAt(bytes, path.length) == 0x3f;
}

/** `application/json`, any case, optionally followed by parameters (`; charset=utf-8`). */
export function isJsonMediaType(bytes: ArrayBuffer | null): bool {
  const mediaType = "application/json";
  if (bytes === null) return false;
  const size = bytes.byteLength;
  let start = 0;
  while (start < size && byteAt(bytes, start) == 0x20) start++;
  if (size - start < mediaType.length) return false;
  for (let i = 0; i < mediaType.length; i++) {
    if (lowered(byteAt(bytes, start + i)) != mediaType.charCodeAt(i)) return false;
  }
  for (let i = start + mediaType.length; i < size; i++) {
    const c = byteAt(bytes, i);
    if (c == 0x3b) return true;
    if (c != 0x20 && c != 0x09) return false;
  }
  return true;
}

/** A non-negative decimal of at most 12 digits, or -1. */
export function decimalValue(bytes: ArrayBuffer): i64 {
  const size = bytes.byteLength;
  if (size == 0 || size > 12) return -1;
  let value: i64 = 0;
  for (let i = 0; i < size; i++) {
    const c = byteAt(bytes, i);
    if (c < 0x30 || c > 0x39) return -1;
    value = value * 10 + (c - 0x30);
  }
  return value;
}
