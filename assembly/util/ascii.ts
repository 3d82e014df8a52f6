// Bytes and characters, checked without allocating: the one character table (generated from the
// contract's grammars) and the one decimal parser of the filter. Header values and shared-data
// values arrive as UTF-8 bytes and are checked as bytes, never turned into strings first.
import { CHAR_CLASSES, CharClass } from "../contract";

export { CharClass };

/**
 * The ","-separated names of the UTF-8 list at list[0, size) (names are ASCII), as strings: the
 * contract's lists (contract.ts) are stored so and split once, at start.
 */
export function namesOf(list: usize, size: i32): string[] {
  const names = new Array<string>();
  let start = 0;
  for (let end = 0; end <= size; end++) {
    if (end < size && load<u8>(list + <usize>end) != 0x2c) continue;
    names.push(String.UTF8.decodeUnsafe(list + <usize>start, <usize>(end - start)));
    start = end + 1;
  }
  return names;
}

/** The largest decimal any of the filter's fields may hold (epoch milliseconds fit). */
const MAX_DIGITS = 15;

@inline
export function isInClass(c: i32, charClass: CharClass): bool {
  return <u32>c < 128 && (load<u8>(CHAR_CLASSES + <usize>c) & <u8>charClass) != 0;
}

/** Every character of text[from, to) belongs to `charClass` (an empty range does too). */
export function allInClass(text: string, from: i32, to: i32, charClass: CharClass): bool {
  for (let i = from; i < to; i++) {
    if (!isInClass(text.charCodeAt(i), charClass)) return false;
  }
  return true;
}

/** Where the last scanDecimal stopped (a module field so the hot path returns no tuple object). */
export let decimalEnd: i32 = 0;

/**
 * Reads the decimal digits at base[from..size) up to the first non-digit; decimalEnd tells where
 * it stopped. -1 when there is no digit or more than MAX_DIGITS of them.
 */
export function scanDecimal(base: usize, from: i32, size: i32): i64 {
  let value: i64 = 0;
  let end = from;
  while (end < size) {
    const digit = <i32>load<u8>(base + <usize>end) - 0x30;
    if (<u32>digit > 9) break;
    if (end - from == MAX_DIGITS) {
      decimalEnd = end;
      return -1;
    }
    value = value * 10 + digit;
    end++;
  }
  decimalEnd = end;
  return end == from ? -1 : value;
}

/**
 * `value` in decimal, as its toString() would write it. The standard toString takes any radix,
 * and brings that machinery and its messages into the module; the filter only writes decimals.
 */
export function decimal(value: i64): string {
  const negative = value < 0;
  let rest = negative ? <u64>-value : <u64>value;
  let length = negative ? 2 : 1;
  for (let more = rest / 10; more > 0; more /= 10) length++;
  const text = changetype<string>(__new(<usize>length << 1, idof<string>()));
  const chars = changetype<usize>(text);
  for (let i = length - 1; i >= <i32>negative; i--) {
    store<u16>(chars + (<usize>i << 1), <u16>(0x30 + rest % 10));
    rest /= 10;
  }
  if (negative) store<u16>(chars, 0x2d);
  return text;
}

/** data[0, size) is exactly a decimal: its value, or -1. */
export function decimalAt(data: usize, size: i32): i64 {
  const value = scanDecimal(data, 0, size);
  return decimalEnd == size ? value : -1;
}

/** bytes[from, to) is exactly a decimal: its value, or -1. */
export function decimalIn(bytes: ArrayBuffer, from: i32, to: i32): i64 {
  const value = scanDecimal(changetype<usize>(bytes), from, to);
  return decimalEnd == to ? value : -1;
}

/** The whole of `bytes` is a decimal: its value, or -1 (also when absent). */
export function decimalValue(bytes: ArrayBuffer | null): i64 {
  return bytes === null ? -1 : decimalAt(changetype<usize>(bytes), bytes.byteLength);
}

/** data[0, size) == text (ASCII text). */
export function bytesEqualAt(data: usize, size: i32, text: string): bool {
  if (size != text.length) return false;
  for (let i = 0; i < size; i++) {
    if (<i32>load<u8>(data + <usize>i) != text.charCodeAt(i)) return false;
  }
  return true;
}

/** The part of the request path at data[0, size) before '?' equals `path`. */
export function pathMatchesAt(data: usize, size: i32, path: string): bool {
  if (!pathStartsWithAt(data, size, path)) return false;
  return size == path.length || load<u8>(data + <usize>path.length) == 0x3f;
}

/** The request path at data[0, size) is `prefix` or under it: followed by nothing, '/' or '?'. */
export function pathWithinAt(data: usize, size: i32, prefix: string): bool {
  if (!pathStartsWithAt(data, size, prefix)) return false;
  if (size == prefix.length) return true;
  const next = load<u8>(data + <usize>prefix.length);
  return next == 0x2f || next == 0x3f;
}

/** The request path at data[0, size) starts with `prefix`. */
export function pathStartsWithAt(data: usize, size: i32, prefix: string): bool {
  if (size < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (<i32>load<u8>(data + <usize>i) != prefix.charCodeAt(i)) return false;
  }
  return true;
}

/** `application/json`, any case, optionally followed by parameters (`; charset=utf-8`). */
export function isJsonMediaTypeAt(data: usize, size: i32): bool {
  const mediaType = "application/json";
  let start = 0;
  while (start < size && load<u8>(data + <usize>start) == 0x20) start++;
  if (size - start < mediaType.length) return false;
  for (let i = 0; i < mediaType.length; i++) {
    let c = <i32>load<u8>(data + <usize>(start + i));
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c != mediaType.charCodeAt(i)) return false;
  }
  for (let i = start + mediaType.length; i < size; i++) {
    const c = load<u8>(data + <usize>i);
    if (c == 0x3b) return true;
    if (c != 0x20 && c != 0x09) return false;
  }
  return true;
}
