// @ts-nocheck -- AssemblyScript (u32, usize, load, heap …), compiled by asc with ./asconfig.json;
// the project's tsconfig.json type-checks bench/ as Node TypeScript, which this file is not.
// The wasm floor: the smallest proxy-wasm filter that answers a credential request the way the
// exchange filter answers an L1 hit — from the same callback, with a local reply of the same
// status, body and response headers — and does nothing else. What any proxy-wasm filter in this
// runtime pays before it does any work of its own: the VM entries, the stream context, the local
// reply. `npm run bench` runs it in Envoys that differ from the sidecar only in this module
// (bench/envoys.ts, variants "wasm-floor" and "metadata-wasm-floor").
//
// The callback is the one the filter answers from: a request with a body (POST /exchange) at the
// end of its body, a request without one (the stock-SDK doors' GETs) in the request headers.
//
// Plugin configuration (a StringValue), like an HTTP message: one "name: value\n" line per response
// header, an empty line, then the response body (bench/envoys.ts wasmFloorConfiguration). It is
// read once, in proxy_on_configure; the reply's header pairs are serialized then, so a request
// allocates nothing in the module.
//
// Exports only what Envoy needs: proxy-wasm-cpp-host skips every callback a module does not export
// (no proxy_on_done / proxy_on_log / proxy_on_delete / response callbacks).
import { proxy_get_buffer_bytes, proxy_send_local_response } from "../../assembly/proxy-wasm/imports";

const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const STATUS_OK: u32 = 0;
const ACTION_CONTINUE: u32 = 0;
const ACTION_PAUSE: u32 = 1;
const NEWLINE: u8 = 0x0a;
const COLON: u8 = 0x3a;
const SPACE: u8 = 0x20;

// Out-parameters of proxy_get_buffer_bytes.
const OUT_DATA: usize = memory.data(8);
const OUT_SIZE: usize = memory.data(8);

// What every reply sends, set up by proxy_on_configure.
let details: usize = 0;
let detailsSize: usize = 0;
let body: usize = 0;
let bodySize: usize = 0;
let headers: usize = 0;
let headersSize: usize = 0;

export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size);
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {}

export function proxy_on_vm_start(rootId: u32, vmConfigurationSize: u32): bool {
  return true;
}

export function proxy_on_configure(rootId: u32, configurationSize: u32): bool {
  if (configurationSize == 0) return false;
  if (proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, configurationSize, OUT_DATA, OUT_SIZE) != STATUS_OK) return false;
  const config = load<usize>(OUT_DATA);
  const size = <usize>load<u32>(OUT_SIZE);

  // The header lines end at the first empty line; the body follows it.
  let count: usize = 0;
  let at: usize = 0;
  while (at < size && load<u8>(config + at) != NEWLINE) {
    const end = lineEnd(config, at, size);
    if (end >= size || separatorIn(config, at, end) == end) return false;
    count++;
    at = end + 1;
  }
  if (at + 1 >= size) return false;
  body = config + at + 1;
  bodySize = size - at - 1;

  const detailsText = "hexr_credential";
  detailsSize = <usize>detailsText.length;
  details = heap.alloc(detailsSize);
  for (let i = 0; i < detailsText.length; i++) store<u8>(details + <usize>i, <u8>detailsText.charCodeAt(i));

  // The header pairs as proxy_send_local_response takes them (proxy-wasm ABI 0.2.1,
  // "Serialization"): u32 count, then count × (u32 name size, u32 value size), then every name and
  // value, each followed by a NUL byte. A line "name: value\n" becomes "name\0value\0", one byte
  // shorter, so the names and values take the header lines' bytes less one per line.
  headersSize = 4 + count * 8 + at - count;
  headers = heap.alloc(headersSize);
  store<u32>(headers, <u32>count);
  let sizes = headers + 4;
  let bytes = headers + 4 + count * 8;
  for (let line: usize = 0; line < at; ) {
    const end = lineEnd(config, line, size);
    const colon = separatorIn(config, line, end);
    const nameSize = colon - line;
    const valueSize = end - colon - 2;
    memory.copy(bytes, config + line, nameSize);
    bytes += nameSize;
    store<u8>(bytes++, 0);
    memory.copy(bytes, config + colon + 2, valueSize);
    bytes += valueSize;
    store<u8>(bytes++, 0);
    store<u32>(sizes, <u32>nameSize);
    store<u32>(sizes + 4, <u32>valueSize);
    sizes += 8;
    line = end + 1;
  }
  return true;
}

export function proxy_on_request_headers(contextId: u32, numHeaders: u32, endOfStream: bool): u32 {
  if (!endOfStream) return ACTION_CONTINUE; // a body follows: answered at its end, as the filter does
  proxy_send_local_response(200, details, detailsSize, body, bodySize, headers, headersSize, -1);
  return ACTION_PAUSE;
}

export function proxy_on_request_body(contextId: u32, size: u32, endOfStream: bool): u32 {
  if (!endOfStream) return ACTION_PAUSE; // let Envoy buffer until the whole body is there
  proxy_send_local_response(200, details, detailsSize, body, bodySize, headers, headersSize, -1);
  return ACTION_PAUSE;
}

/** Where the line starting at `from` ends (its '\n'), or `size`. */
function lineEnd(config: usize, from: usize, size: usize): usize {
  let i = from;
  while (i < size && load<u8>(config + i) != NEWLINE) i++;
  return i;
}

/** Where ": " first occurs in [from, end) (a name never holds a colon), or `end`. */
function separatorIn(config: usize, from: usize, end: usize): usize {
  for (let i = from; i + 1 < end; i++) {
    if (load<u8>(config + i) == COLON && load<u8>(config + i + 1) == SPACE) return i;
  }
  return end;
}
