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

function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/** Takes ownership of a block the host returned and copies it into a managed buffer. */
function takeReturned(): ArrayBuffer {
  const data = load<usize>(OUT_DATA);
  const size = <i32>load<u32>(OUT_SIZE);
  const copy = new ArrayBuffer(size);
  if (size > 0) memory.copy(changetype<usize>(copy), data, size);
  if (data != 0) heap.free(data);
  return copy;
}

// ---- logging and time ----

export function log(level: LogLevel, message: string): void {
  const bytes = utf8(message);
  abi.proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
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

/** Reads a host property; path segments are joined with NUL as the ABI expects. */
export function getProperty(path: string[]): ArrayBuffer | null {
  const encoded = utf8(path.join("\0"));
  const status = abi.proxy_get_property(changetype<usize>(encoded), encoded.byteLength, OUT_DATA, OUT_SIZE);
  return status == Status.Ok ? takeReturned() : null;
}

// ---- buffers ----

export function getBuffer(buffer: BufferType, start: i32, maxSize: i32): ArrayBuffer | null {
  const status = abi.proxy_get_buffer_bytes(buffer, start, maxSize, OUT_DATA, OUT_SIZE);
  return status == Status.Ok ? takeReturned() : null;
}

// ---- header maps ----

export function getHeader(map: MapType, name: string): string | null {
  const key = utf8(name);
  const status = abi.proxy_get_header_map_value(map, changetype<usize>(key), key.byteLength, OUT_DATA, OUT_SIZE);
  if (status != Status.Ok) return null;
  return String.UTF8.decode(takeReturned());
}

export function getHeaderNames(map: MapType): string[] {
  const names = new Array<string>();
  if (abi.proxy_get_header_map_pairs(map, OUT_DATA, OUT_SIZE) != Status.Ok) return names;
  const serialized = takeReturned();
  const pairs = deserializePairs(serialized);
  for (let i = 0; i < pairs.length; i++) names.push(pairs[i].name);
  return names;
}

export function addHeader(map: MapType, name: string, value: string): void {
  const key = utf8(name);
  const data = utf8(value);
  abi.proxy_add_header_map_value(map, changetype<usize>(key), key.byteLength, changetype<usize>(data), data.byteLength);
}

export function replaceHeader(map: MapType, name: string, value: string): void {
  const key = utf8(name);
  const data = utf8(value);
  abi.proxy_replace_header_map_value(map, changetype<usize>(key), key.byteLength, changetype<usize>(data), data.byteLength);
}

export function removeHeader(map: MapType, name: string): void {
  const key = utf8(name);
  abi.proxy_remove_header_map_value(map, changetype<usize>(key), key.byteLength);
}

// ---- stream control ----

export function sendLocalResponse(status: u32, details: string, body: Uint8Array, headers: Header[]): void {
  const detailBytes = utf8(details);
  const serialized = serializePairs(headers);
  abi.proxy_send_local_response(
    status,
    changetype<usize>(detailBytes), detailBytes.byteLength,
    body.dataStart, body.byteLength,
    changetype<usize>(serialized), serialized.byteLength,
    -1,
  );
}

export function continueStream(stream: StreamType): void {
  abi.proxy_continue_stream(stream);
}

/** Dispatches an HTTP call to a cluster; returns its token, or 0 when the host refused it. */
export function httpCall(cluster: string, headers: Header[], body: Uint8Array | null, timeoutMs: u32): u32 {
  const upstream = utf8(cluster);
  const serialized = serializePairs(headers);
  const bodyData: usize = body ? body.dataStart : 0;
  const bodySize: usize = body ? <usize>body.byteLength : 0;
  const status = abi.proxy_http_call(
    changetype<usize>(upstream), upstream.byteLength,
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
  const encoded = utf8(key);
  const status = abi.proxy_get_shared_data(changetype<usize>(encoded), encoded.byteLength, OUT_DATA, OUT_SIZE, OUT_EXTRA);
  if (status != Status.Ok) return null;
  const cas = load<u32>(OUT_EXTRA);
  return new SharedValue(takeReturned(), cas);
}

/** cas 0 writes unconditionally; otherwise the write only lands if nobody wrote since that cas. */
export function setSharedData(key: string, value: Uint8Array, cas: u32): Status {
  const encoded = utf8(key);
  return abi.proxy_set_shared_data(changetype<usize>(encoded), encoded.byteLength, value.dataStart, value.byteLength, cas);
}

// ---- metrics ----

export function defineMetric(type: MetricType, name: string): u32 {
  const encoded = utf8(name);
  const status = abi.proxy_define_metric(type, changetype<usize>(encoded), encoded.byteLength, OUT_DATA);
  return status == Status.Ok ? load<u32>(OUT_DATA) : 0;
}

export function incrementMetric(id: u32, delta: i64): void {
  if (id != 0) abi.proxy_increment_metric(id, delta);
}

export function recordMetric(id: u32, value: u64): void {
  if (id != 0) abi.proxy_record_metric(id, value);
}

// ---- serialization of header maps (spec: "Serialization") ----

function serializePairs(headers: Header[]): ArrayBuffer {
  const count = headers.length;
  const names = new Array<ArrayBuffer>(count);
  const values = new Array<ArrayBuffer>(count);
  let size = 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const name = utf8(headers[i].name);
    const value = utf8(headers[i].value);
    names[i] = name;
    values[i] = value;
    size += name.byteLength + value.byteLength + 2;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, count);
  let sizes = base + 4;
  let bytes = base + 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const name = names[i];
    const value = values[i];
    store<u32>(sizes, name.byteLength);
    store<u32>(sizes + 4, value.byteLength);
    sizes += 8;
    memory.copy(bytes, changetype<usize>(name), name.byteLength);
    bytes += name.byteLength;
    store<u8>(bytes++, 0);
    memory.copy(bytes, changetype<usize>(value), value.byteLength);
    bytes += value.byteLength;
    store<u8>(bytes++, 0);
  }
  return out;
}

/** Parses a serialized map; a malformed one yields the pairs read so far instead of trapping. */
function deserializePairs(serialized: ArrayBuffer): Header[] {
  const pairs = new Array<Header>();
  const total = <usize>serialized.byteLength;
  if (total < 4) return pairs;
  const base = changetype<usize>(serialized);
  const count = <usize>load<u32>(base);
  if (count > (total - 4) / 8) return pairs;
  let bytes = base + 4 + count * 8;
  const end = base + total;
  for (let i: usize = 0; i < count; i++) {
    const nameSize = <usize>load<u32>(base + 4 + i * 8);
    const valueSize = <usize>load<u32>(base + 8 + i * 8);
    if (nameSize + valueSize + 2 > end - bytes) break;
    const name = String.UTF8.decodeUnsafe(bytes, nameSize);
    bytes += nameSize + 1;
    const value = String.UTF8.decodeUnsafe(bytes, valueSize);
    bytes += valueSize + 1;
    pairs.push(new Header(name, value));
  }
  return pairs;
}
