// What the stock-SDK doors share to answer with a credential: the string fields of the injector's
// answer (the cached body: {"credentials": {...}, "expiration": ..., ...}, as JSON.stringify wrote
// it) found in one scan, an answer body written into one reused buffer, and the x-hexr-* headers
// every credential answer carries for the access log. Nothing here allocates on an L1 hit.
import { HEADER_CACHE, HEADER_EXPIRES_AT, HEADER_REGION, HEADER_SERVICE, HEADER_SPIFFE_ID } from "../contract";
import { Tier, tierName } from "../filter/metrics";
import { CredentialRequest } from "../input/credential-request";
import { addReplyHeader, addReplyHeaderBytes, addReplyHeaderDecimal, beginReplyHeaders } from "../proxy-wasm/host";

const STALE_WARNING = "110 - \"stale credential: the credential injector is unavailable\"";

/** Starts a credential answer's headers: the content type, then who got what from which tier. */
export function beginCredentialHeaders(contentType: string, request: CredentialRequest, tier: Tier, expiresAt: i64, extra: i32): void {
  const stale = tier == Tier.L1Stale;
  beginReplyHeaders((stale ? 7 : 6) + extra);
  addReplyHeader("content-type", contentType);
  addReplyHeader(HEADER_CACHE, tierName(tier));
  addReplyHeaderBytes(HEADER_SPIFFE_ID, request.identity.spiffe.uriBytes);
  addReplyHeader(HEADER_SERVICE, request.service);
  addReplyHeader(HEADER_REGION, request.region);
  if (expiresAt > 0) addReplyHeaderDecimal(HEADER_EXPIRES_AT, expiresAt);
  if (stale) addReplyHeader("warning", STALE_WARNING);
}

// ---- the fields of the injector's answer ----

const MAX_FIELDS = 4;
const FIELD_AT = memory.data(MAX_FIELDS * 8);
const FIELD_SIZE = memory.data(MAX_FIELDS * 4);

/**
 * Finds the string values of `names` (at most four) in the body, wherever they are nested; true
 * when every one was found. Values stay as JSON wrote them (escapes included), so they can be
 * copied into another JSON string as they are. A string followed by ':' is a member's name: inside
 * a value, a quote is always escaped, so no value can pass for a name.
 */
export function findStringFields(body: Uint8Array, names: string[]): bool {
  const base = body.dataStart;
  const size = body.byteLength;
  let missing = names.length;
  for (let n = 0; n < names.length; n++) store<i32>(FIELD_SIZE + <usize>n * 4, -1);
  let i = 0;
  while (i < size && missing > 0) {
    if (load<u8>(base + <usize>i) != 0x22) {
      i++;
      continue;
    }
    const end = stringEnd(base, i + 1, size);
    if (end < 0) return false;
    const valueStart = end + 3;
    if (valueStart > size || load<u8>(base + <usize>(end + 1)) != 0x3a || load<u8>(base + <usize>(end + 2)) != 0x22) {
      i = end + 1;
      continue;
    }
    const valueEnd = stringEnd(base, valueStart, size);
    if (valueEnd < 0) return false;
    const n = nameIndex(names, base + <usize>(i + 1), end - i - 1);
    if (n >= 0 && load<i32>(FIELD_SIZE + <usize>n * 4) < 0) {
      store<usize>(FIELD_AT + <usize>n * 8, base + <usize>valueStart);
      store<i32>(FIELD_SIZE + <usize>n * 4, valueEnd - valueStart);
      missing--;
    }
    i = valueEnd + 1;
  }
  return missing == 0;
}

export function fieldAt(n: i32): usize {
  return load<usize>(FIELD_AT + <usize>n * 8);
}

export function fieldSize(n: i32): i32 {
  return load<i32>(FIELD_SIZE + <usize>n * 4);
}

/** Where the string opened before `from` closes (its unescaped '"'), or -1. */
function stringEnd(base: usize, from: i32, size: i32): i32 {
  for (let i = from; i < size; i++) {
    const c = load<u8>(base + <usize>i);
    if (c == 0x5c) i++;
    else if (c == 0x22) return i;
  }
  return -1;
}

function nameIndex(names: string[], at: usize, size: i32): i32 {
  for (let n = 0; n < names.length; n++) {
    const name = unchecked(names[n]);
    if (name.length != size) continue;
    let same = true;
    for (let i = 0; i < size && same; i++) same = <i32>load<u8>(at + <usize>i) == name.charCodeAt(i);
    if (same) return n;
  }
  return -1;
}

// ---- the answer body ----

let answer = new Uint8Array(4096);
let answerSize: i32 = 0;

/** Starts an answer of at most `capacity` bytes in the reused buffer. */
export function beginAnswer(capacity: i32): void {
  if (answer.byteLength < capacity) answer = new Uint8Array(capacity);
  answerSize = 0;
}

/** ASCII text (the doors' own JSON punctuation and names). */
export function writeText(text: string): void {
  const at = answer.dataStart + <usize>answerSize;
  for (let i = 0; i < text.length; i++) store<u8>(at + <usize>i, <u8>text.charCodeAt(i));
  answerSize += text.length;
}

/** The n-th field found by findStringFields. */
export function writeField(n: i32): void {
  writeBytes(fieldAt(n), fieldSize(n));
}

export function writeBytes(at: usize, size: i32): void {
  memory.copy(answer.dataStart + <usize>answerSize, at, <usize>size);
  answerSize += size;
}

export function writeDecimal(value: i64): void {
  let digits = 1;
  for (let rest = value / 10; rest > 0; rest /= 10) digits++;
  let rest = value;
  for (let i = digits; i > 0; i--) {
    store<u8>(answer.dataStart + <usize>(answerSize + i - 1), <u8>(0x30 + rest % 10));
    rest /= 10;
  }
  answerSize += digits;
}

/** The answer written since beginAnswer: a view of the reused buffer, valid until the next answer. */
export function finishAnswer(): Uint8Array {
  return Uint8Array.wrap(answer.buffer, 0, answerSize);
}
