// The query string of a request path, read in place: a door finds the one or two parameters it
// knows without splitting the path into strings. Only a value a door keeps is decoded.

/** Where the last findQueryValue found its value's raw (still percent-encoded) bytes. */
export let queryValueAt: usize = 0;
export let queryValueSize: i32 = 0;

/** The first `name=value` (or bare `name`) in the query of path[0, size): see queryValueAt. */
export function findQueryValue(path: usize, size: i32, name: string): bool {
  let i = queryStart(path, size);
  while (i < size) {
    let end = i;
    while (end < size && load<u8>(path + <usize>end) != 0x26) end++;
    const nameLength = name.length;
    if (end - i >= nameLength && namesMatch(path + <usize>i, name)) {
      const after = i + nameLength;
      if (after == end || load<u8>(path + <usize>after) == 0x3d) {
        queryValueAt = path + <usize>(after == end ? end : after + 1);
        queryValueSize = after == end ? 0 : end - after - 1;
        return true;
      }
    }
    i = end + 1;
  }
  return false;
}

/** The path's length before its query (the whole path when it has none). */
export function pathLength(path: usize, size: i32): i32 {
  for (let i = 0; i < size; i++) if (load<u8>(path + <usize>i) == 0x3f) return i;
  return size;
}

/**
 * The found value, percent-decoded ('+' is a space, as HTML forms and Python's urlencode write it),
 * or null when it is malformed, longer than `max` once decoded, or decodes to a control character
 * or a non-ASCII byte (no value a door reads needs either).
 */
export function decodedQueryValue(max: i32): string | null {
  let out = "";
  for (let i = 0; i < queryValueSize; i++) {
    let c = <i32>load<u8>(queryValueAt + <usize>i);
    if (c == 0x2b) {
      c = 0x20;
    } else if (c == 0x25) {
      if (i + 2 >= queryValueSize) return null;
      const high = hexDigit(load<u8>(queryValueAt + <usize>(i + 1)));
      const low = hexDigit(load<u8>(queryValueAt + <usize>(i + 2)));
      if (high < 0 || low < 0) return null;
      c = high * 16 + low;
      i += 2;
    }
    if (c < 0x20 || c >= 0x7f || out.length >= max) return null;
    out += String.fromCharCode(c);
  }
  return out;
}

function queryStart(path: usize, size: i32): i32 {
  return pathLength(path, size) + 1;
}

function namesMatch(at: usize, name: string): bool {
  for (let i = 0; i < name.length; i++) {
    if (<i32>load<u8>(at + <usize>i) != name.charCodeAt(i)) return false;
  }
  return true;
}

function hexDigit(c: u8): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>c - 0x30;
  if (c >= 0x41 && c <= 0x46) return <i32>c - 0x37;
  if (c >= 0x61 && c <= 0x66) return <i32>c - 0x57;
  return -1;
}
