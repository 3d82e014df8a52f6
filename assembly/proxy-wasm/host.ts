// The typed surface of the host: every call the filter makes into Envoy goes through here.
// Values the host returns arrive in memory it obtained from proxy_on_memory_allocate; they are
// copied into managed ArrayBuffers and the raw block is released at once.
import * as abi from "./imports";
import { BufferType, LogLevel, MapType, MetricType, Status, StreamType } from "./types";

// Out-parameters of host calls: fixed static slots, so no call allocates for them.
const OUT_DATA: usize = memory.data(8);
const OUT_SIZE: usize = memory.data(8);
const OUT_EXTRA: usize = memory.data(8);

export class Header {
  constructor(public name: string, public value: string) {}
}

// Strings handed to the host (header names, cache keys, values) are encoded into one of two
// static scratch areas rather than into a fresh buffer: the host reads them during the call and
// keeps nothing, and the request path allocates far less. Longer strings get a buffer of their own.
const SCRATCH_SIZE: usize = 1024;
const SCRATCH_FIRST: usize = memory.data(<i32>SCRATCH_SIZE);
const SCRATCH_SECOND: usize = memory.data(<i32>SCRATCH_SIZE);
let encodedSize: usize = 0;
let oversizedFirst: ArrayBuffer | null = null;
let oversizedSecond: ArrayBuffer | null = null;

/** UTF-8 of `text` for the next host call; its size is in `encodedSize`. */
function encodeFirst(text: string): usize {
  const size = <usize>String.UTF8.byteLength(text);
  encodedSize = size;
  if (size <= SCRATCH_SIZE) {
    String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, SCRATCH_FIRST);
    return SCRATCH_FIRST;
  }
  oversizedFirst = String.UTF8.encode(text);
  return changetype<usize>(oversizedFirst);
}

/** Like encodeFirst, into the other area, for calls that take two strings. */
function encodeSecond(text: string): usize {
  const size = <usize>String.UTF8.byteLength(text);
  encodedSize = size;
  if (size <= SCRATCH_SIZE) {
    String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, SCRATCH_SECOND);
    return SCRATCH_SECOND;
  }
  oversizedSecond = String.UTF8.encode(text);
  return changetype<usize>(oversizedSecond);
}

function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/**
 * Memory the host asks for (proxy_on_memory_allocate) to return a value in: a managed ArrayBuffer,
 * pinned until takeReturned adopts it, so a returned value is neither copied nor freed by hand.
 * The host only allocates to hand a value back from the call in progress.
 */
export function allocateForHost(size: usize): usize {
  return __pin(__new(size, idof<ArrayBuffer>()));
}

/** Adopts the value the host just returned. */
function takeReturned(): ArrayBuffer {
  const data = load<usize>(OUT_DATA);
  if (data == 0) return new ArrayBuffer(0);
  __unpin(data);
  const buffer = changetype<ArrayBuffer>(data);
  const size = <i32>load<u32>(OUT_SIZE);
  return size < buffer.byteLength ? buffer.slice(0, size) : buffer;
}

// ---- logging and time ----

export function log(level: LogLevel, message: string): void {
  const data = encodeFirst(message);
  abi.proxy_log(level, data, encodedSize);
}

export function nowNanoseconds(): u64 {
  abi.proxy_get_current_time_nanoseconds(OUT_DATA);
  return load<u64>(OUT_DATA);
}

export function setTickPeriodMilliseconds(period: u32): void {
  abi.proxy_set_tick_period_milliseconds(period);
}

export function setEffectiveContext(contextId: u32): void {
  abi.proxy_set_effective_context(contextId);
}

// ---- properties ----

/** A property path as the ABI expects it (segments joined with NUL), encoded once. */
export function propertyPath(segments: string[]): ArrayBuffer {
  return utf8(segments.join("\0"));
}

export function getProperty(path: ArrayBuffer): ArrayBuffer | null {
  const status = abi.proxy_get_property(changetype<usize>(path), path.byteLength, OUT_DATA, OUT_SIZE);
  return status == Status.Ok ? takeReturned() : null;
}

// ---- buffers ----

export function getBuffer(buffer: BufferType, start: i32, maxSize: i32): ArrayBuffer | null {
  const status = abi.proxy_get_buffer_bytes(buffer, start, maxSize, OUT_DATA, OUT_SIZE);
  return status == Status.Ok ? takeReturned() : null;
}

/** Replaces the whole of a stream's body buffer (only while the filter holds that body). */
export function replaceBuffer(buffer: BufferType, currentSize: i32, data: Uint8Array): bool {
  return abi.proxy_set_buffer_bytes(buffer, 0, currentSize, data.dataStart, data.byteLength) == Status.Ok;
}

// ---- header maps ----

/** A header's value as bytes: checked in place or passed on, never turned into a string first. */
export function getHeaderBytes(map: MapType, name: string): ArrayBuffer | null {
  const key = encodeFirst(name);
  const status = abi.proxy_get_header_map_value(map, key, encodedSize, OUT_DATA, OUT_SIZE);
  return status == Status.Ok ? takeReturned() : null;
}

/** Sets `name` to exactly `value` in a header map (a request's, before it goes upstream). */
export function replaceHeader(map: MapType, name: string, value: string): void {
  const key = encodeFirst(name);
  const keySize = encodedSize;
  const data = encodeSecond(value);
  abi.proxy_replace_header_map_value(map, key, keySize, data, encodedSize);
}

/** Removes `name` from a header map (every value of it). */
export function removeHeader(map: MapType, name: string): void {
  abi.proxy_remove_header_map_value(map, encodeFirst(name), encodedSize);
}

/**
 * A whole header map, read in one host call (one call instead of one per header): names are
 * compared in the serialized pairs themselves, and a value is copied only when asked for.
 */
export class HeaderPairs {
  constructor(private serialized: ArrayBuffer, private count: usize) {}

  /** Where the value `find` found starts, and its size (valid until the next find). */
  foundAt: usize = 0;
  foundSize: i32 = 0;

  /** Finds the first header named `name` (lower case) without copying its value: see foundAt. */
  find(name: string): bool {
    const base = changetype<usize>(this.serialized);
    let bytes = base + 4 + this.count * 8;
    for (let i: usize = 0; i < this.count; i++) {
      const nameSize = <usize>load<u32>(base + 4 + i * 8);
      const valueSize = <usize>load<u32>(base + 8 + i * 8);
      if (nameEquals(bytes, nameSize, name)) {
        this.foundAt = bytes + nameSize + 1;
        this.foundSize = <i32>valueSize;
        return true;
      }
      bytes += nameSize + valueSize + 2;
    }
    return false;
  }

  /** The value of the first header named `name` (lower case), copied, or null. */
  value(name: string): ArrayBuffer | null {
    const base = changetype<usize>(this.serialized);
    let bytes = base + 4 + this.count * 8;
    for (let i: usize = 0; i < this.count; i++) {
      const nameSize = <usize>load<u32>(base + 4 + i * 8);
      const valueSize = <usize>load<u32>(base + 8 + i * 8);
      if (nameEquals(bytes, nameSize, name)) return this.serialized.slice(<i32>(bytes + nameSize + 1 - base), <i32>(bytes + nameSize + 1 + valueSize - base));
      bytes += nameSize + valueSize + 2;
    }
    return null;
  }

  /** How many headers are named `name` (lower case); the first one's value is then at foundAt. */
  occurrences(name: string): i32 {
    const base = changetype<usize>(this.serialized);
    let bytes = base + 4 + this.count * 8;
    let found = 0;
    for (let i: usize = 0; i < this.count; i++) {
      const nameSize = <usize>load<u32>(base + 4 + i * 8);
      const valueSize = <usize>load<u32>(base + 8 + i * 8);
      if (nameEquals(bytes, nameSize, name) && found++ == 0) {
        this.foundAt = bytes + nameSize + 1;
        this.foundSize = <i32>valueSize;
      }
      bytes += nameSize + valueSize + 2;
    }
    return found;
  }

  /** Whether any header's name starts with `lowercasePrefix`, in any case. */
  hasNameWithPrefix(lowercasePrefix: string): bool {
    const base = changetype<usize>(this.serialized);
    let bytes = base + 4 + this.count * 8;
    for (let i: usize = 0; i < this.count; i++) {
      const nameSize = <usize>load<u32>(base + 4 + i * 8);
      if (hasPrefixIgnoringCase(bytes, nameSize, lowercasePrefix)) return true;
      bytes += nameSize + <usize>load<u32>(base + 8 + i * 8) + 2;
    }
    return false;
  }
}

/** The pairs of a header map; null when the host has none or sent a malformed serialization. */
export function getHeaderPairs(map: MapType): HeaderPairs | null {
  if (abi.proxy_get_header_map_pairs(map, OUT_DATA, OUT_SIZE) != Status.Ok) return null;
  const serialized = takeReturned();
  const total = <usize>serialized.byteLength;
  if (total < 4) return null;
  const base = changetype<usize>(serialized);
  const count = <usize>load<u32>(base);
  if (count > (total - 4) / 8) return null;
  // Check every size once here, so the lookups above can trust them.
  let bytes = base + 4 + count * 8;
  const end = base + total;
  for (let i: usize = 0; i < count; i++) {
    const pairSize = <usize>load<u32>(base + 4 + i * 8) + <usize>load<u32>(base + 8 + i * 8) + 2;
    if (pairSize > end - bytes) return null;
    bytes += pairSize;
  }
  return new HeaderPairs(serialized, count);
}

/**
 * Removes every header whose name starts with `lowercasePrefix` (ASCII case-insensitive). Names are
 * compared in the serialized map itself, so headers that do not match cost no string at all.
 */
export function removeHeadersWithPrefix(map: MapType, lowercasePrefix: string): void {
  if (abi.proxy_get_header_map_pairs(map, OUT_DATA, OUT_SIZE) != Status.Ok) return;
  const serialized = takeReturned();
  const total = <usize>serialized.byteLength;
  if (total < 4) return;
  const base = changetype<usize>(serialized);
  const count = <usize>load<u32>(base);
  if (count > (total - 4) / 8) return;
  let bytes = base + 4 + count * 8;
  const end = base + total;
  for (let i: usize = 0; i < count; i++) {
    const nameSize = <usize>load<u32>(base + 4 + i * 8);
    const valueSize = <usize>load<u32>(base + 8 + i * 8);
    if (nameSize + valueSize + 2 > end - bytes) return;
    if (hasPrefixIgnoringCase(bytes, nameSize, lowercasePrefix)) {
      abi.proxy_remove_header_map_value(map, bytes, nameSize);
    }
    bytes += nameSize + valueSize + 2;
  }
}

function nameEquals(data: usize, size: usize, name: string): bool {
  if (size != <usize>name.length) return false;
  for (let i: usize = 0; i < size; i++) {
    if (<i32>load<u8>(data + i) != name.charCodeAt(<i32>i)) return false;
  }
  return true;
}

function hasPrefixIgnoringCase(data: usize, size: usize, lowercasePrefix: string): bool {
  const length = <usize>lowercasePrefix.length;
  if (size < length) return false;
  for (let i: usize = 0; i < length; i++) {
    let c = <i32>load<u8>(data + i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c != lowercasePrefix.charCodeAt(<i32>i)) return false;
  }
  return true;
}

// ---- stream control ----

/** Lets a request the filter held (its headers callback paused it) go on upstream. */
export function continueRequest(): void {
  abi.proxy_continue_stream(StreamType.Request);
}

export function sendLocalResponse(status: u32, details: string, body: Uint8Array, headers: Header[]): void {
  const detailData = encodeFirst(details);
  const serialized = serializePairs(headers);
  abi.proxy_send_local_response(
    status,
    detailData, encodedSize,
    body.dataStart, body.byteLength,
    changetype<usize>(serialized), serialized.byteLength,
    -1,
  );
}

// The hot path's local reply builds its few, short headers in a static area instead of objects
// and a fresh buffer: begin with the count, add each pair, then send.
const REPLY_PAIRS_SIZE: usize = 512;
const REPLY_PAIRS: usize = memory.data(<i32>REPLY_PAIRS_SIZE);
let replyPairsCount: usize = 0;
let replyPairsAdded: usize = 0;
let replyPairsEnd: usize = 0;

export function beginReplyHeaders(count: i32): void {
  replyPairsCount = <usize>count;
  replyPairsAdded = 0;
  store<u32>(REPLY_PAIRS, <u32>count);
  replyPairsEnd = REPLY_PAIRS + 4 + replyPairsCount * 8;
}

/**
 * Lays out the next pair (its sizes, the name, both NULs) and returns where its value's bytes go;
 * 0 when no pair is left or the area is full. The names and values the filter sends are short
 * constants, far below the area's size.
 */
function reservePair(name: string, valueSize: usize): usize {
  const nameSize = <usize>String.UTF8.byteLength(name);
  if (replyPairsAdded >= replyPairsCount || replyPairsEnd + nameSize + valueSize + 2 > REPLY_PAIRS + REPLY_PAIRS_SIZE) return 0;
  store<u32>(REPLY_PAIRS + 4 + replyPairsAdded * 8, <u32>nameSize);
  store<u32>(REPLY_PAIRS + 8 + replyPairsAdded * 8, <u32>valueSize);
  replyPairsAdded++;
  String.UTF8.encodeUnsafe(changetype<usize>(name), name.length, replyPairsEnd);
  store<u8>(replyPairsEnd + nameSize, 0);
  const value = replyPairsEnd + nameSize + 1;
  store<u8>(value + valueSize, 0);
  replyPairsEnd = value + valueSize + 1;
  return value;
}

export function addReplyHeader(name: string, value: string): void {
  const at = reservePair(name, <usize>String.UTF8.byteLength(value));
  if (at != 0) String.UTF8.encodeUnsafe(changetype<usize>(value), value.length, at);
}

/** Adds a header whose value is already UTF-8 (encoded once, sent with every reply). */
export function addReplyHeaderBytes(name: string, value: ArrayBuffer): void {
  const at = reservePair(name, <usize>value.byteLength);
  if (at != 0) memory.copy(at, changetype<usize>(value), <usize>value.byteLength);
}

/** Adds a header whose value is a non-negative decimal, written in place (no string). */
export function addReplyHeaderDecimal(name: string, value: i64): void {
  if (value < 0) return;
  let digits: usize = 1;
  for (let rest = value / 10; rest > 0; rest /= 10) digits++;
  const at = reservePair(name, digits);
  if (at == 0) return;
  let rest = value;
  for (let i = digits; i > 0; i--) {
    store<u8>(at + i - 1, <u8>(0x30 + rest % 10));
    rest /= 10;
  }
}

/** Sends the local reply with the headers added since beginReplyHeaders. */
export function sendLocalResponseWithReplyHeaders(status: u32, details: string, body: Uint8Array): void {
  store<u32>(REPLY_PAIRS, <u32>replyPairsAdded); // a header that did not fit is left out, never half-written
  if (replyPairsAdded < replyPairsCount) {
    // The sizes table was laid out for `count` pairs: move the bytes up behind the shorter table.
    const gap = (replyPairsCount - replyPairsAdded) * 8;
    const start = REPLY_PAIRS + 4 + replyPairsCount * 8;
    memory.copy(start - gap, start, replyPairsEnd - start);
    replyPairsEnd -= gap;
  }
  const detailData = encodeFirst(details);
  abi.proxy_send_local_response(
    status,
    detailData, encodedSize,
    body.dataStart, body.byteLength,
    REPLY_PAIRS, replyPairsEnd - REPLY_PAIRS,
    -1,
  );
}

/** Dispatches an HTTP call to a cluster; returns its token, or 0 when the host refused it. */
export function httpCall(cluster: string, headers: Header[], body: Uint8Array | null, timeoutMs: u32): u32 {
  const upstream = encodeFirst(cluster);
  const upstreamSize = encodedSize;
  const serialized = serializePairs(headers);
  const bodyData: usize = body ? body.dataStart : 0;
  const bodySize: usize = body ? <usize>body.byteLength : 0;
  const status = abi.proxy_http_call(
    upstream, upstreamSize,
    changetype<usize>(serialized), serialized.byteLength,
    bodyData, bodySize, 0, 0, timeoutMs, OUT_DATA,
  );
  return status == Status.Ok ? load<u32>(OUT_DATA) : 0;
}

// ---- shared data ----

export class SharedValue {
  constructor(public data: ArrayBuffer, public cas: u32) {}
}

export function getSharedData(key: string): SharedValue | null {
  const encoded = encodeFirst(key);
  const status = abi.proxy_get_shared_data(encoded, encodedSize, OUT_DATA, OUT_SIZE, OUT_EXTRA);
  if (status != Status.Ok) return null;
  const cas = load<u32>(OUT_EXTRA);
  return new SharedValue(takeReturned(), cas);
}

/** cas 0 writes unconditionally; otherwise the write only lands if nobody wrote since that cas. */
export function setSharedData(key: string, value: Uint8Array, cas: u32): Status {
  const encoded = encodeFirst(key);
  return abi.proxy_set_shared_data(encoded, encodedSize, value.dataStart, value.byteLength, cas);
}

// ---- metrics ----

export function defineMetric(type: MetricType, name: string): u32 {
  const encoded = encodeFirst(name);
  const status = abi.proxy_define_metric(type, encoded, encodedSize, OUT_DATA);
  return status == Status.Ok ? load<u32>(OUT_DATA) : 0;
}

export function incrementMetric(id: u32, delta: i64): void {
  if (id != 0) abi.proxy_increment_metric(id, delta);
}

export function recordMetric(id: u32, value: u64): void {
  if (id != 0) abi.proxy_record_metric(id, value);
}

// ---- serialization of header maps (spec: "Serialization") ----

/** One buffer, sized first and then written in place: no intermediate buffer per name or value. */
function serializePairs(headers: Header[]): ArrayBuffer {
  const count = headers.length;
  let size = 4 + count * 8;
  for (let i = 0; i < count; i++) {
    size += String.UTF8.byteLength(headers[i].name) + String.UTF8.byteLength(headers[i].value) + 2;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, count);
  let sizes = base + 4;
  let bytes = base + 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const header = headers[i];
    const nameSize = String.UTF8.encodeUnsafe(changetype<usize>(header.name), header.name.length, bytes);
    bytes += nameSize;
    store<u8>(bytes++, 0);
    const valueSize = String.UTF8.encodeUnsafe(changetype<usize>(header.value), header.value.length, bytes);
    bytes += valueSize;
    store<u8>(bytes++, 0);
    store<u32>(sizes, <u32>nameSize);
    store<u32>(sizes + 4, <u32>valueSize);
    sizes += 8;
  }
  return out;
}
