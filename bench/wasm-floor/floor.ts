// @ts-nocheck -- AssemblyScript (u32, usize, load, heap …), compiled by asc with ./asconfig.json;
// the project's tsconfig.json type-checks bench/ as Node TypeScript, which this file is not.
// The wasm floor: the smallest proxy-wasm filter that answers the exchange the way the exchange
// filter answers an L1 hit — from the same callback (the request body, at end of stream), with a
// local reply of the same status, body and response headers — and does nothing else. What any
// proxy-wasm filter in this runtime pays before it does any work of its own: the VM entries, the
// stream context, the local reply. `npm run bench` runs it in an Envoy that differs from the
// sidecar only in this module (bench/envoys.ts, variant "wasm-floor").
//
// Plugin configuration (a StringValue): "<x-hexr-expires-at digits>\n<response body bytes>".
// It is read once, in proxy_on_configure; the reply's header pairs are serialized then, so a
// request allocates nothing in the module.
//
// Exports only what Envoy needs: proxy-wasm-cpp-host skips every callback a module does not export
// (no proxy_on_done / proxy_on_log / proxy_on_delete / response callbacks).
import { proxy_get_buffer_bytes, proxy_send_local_response } from "../../assembly/proxy-wasm/imports";

const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const STATUS_OK: u32 = 0;
const ACTION_CONTINUE: u32 = 0;
const ACTION_PAUSE: u32 = 1;
const NEWLINE: u8 = 0x0a;

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
  // "<digits>\n<body>": the digits are the x-hexr-expires-at value.
  let digits: usize = 0;
  while (digits < size && load<u8>(config + digits) != NEWLINE) {
    const c = load<u8>(config + digits);
    if (c < 0x30 || c > 0x39) return false;
    digits++;
  }
  if (digits == 0 || digits > 20 || digits + 1 >= size) return false;
  body = config + digits + 1;
  bodySize = size - digits - 1;

  const detailsText = "hexr_credential";
  detailsSize = <usize>detailsText.length;
  details = heap.alloc(detailsSize);
  writeAscii(details, detailsText);

  // The header pairs as proxy_send_local_response takes them (proxy-wasm ABI 0.2.1,
  // "Serialization"): u32 count, then count × (u32 name size, u32 value size), then every name and
  // value, each followed by a NUL byte.
  const names: string[] = ["content-type", "x-hexr-cache", "x-hexr-expires-at"];
  const values: string[] = ["application/json", "L1", ""];
  const count = <usize>names.length;
  let total: usize = 4 + count * 8;
  for (let i = 0; i < names.length; i++) total += <usize>names[i].length + 1 + 1;
  total += <usize>values[0].length + <usize>values[1].length + digits;
  headers = heap.alloc(total);
  headersSize = total;
  store<u32>(headers, <u32>count);
  let sizes = headers + 4;
  let bytes = headers + 4 + count * 8;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const nameSize = <usize>name.length;
    writeAscii(bytes, name);
    bytes += nameSize;
    store<u8>(bytes++, 0);
    let valueSize: usize;
    if (i == 2) {
      memory.copy(bytes, config, digits);
      valueSize = digits;
    } else {
      valueSize = <usize>values[i].length;
      writeAscii(bytes, values[i]);
    }
    bytes += valueSize;
    store<u8>(bytes++, 0);
    store<u32>(sizes, <u32>nameSize);
    store<u32>(sizes + 4, <u32>valueSize);
    sizes += 8;
  }
  return true;
}

export function proxy_on_request_headers(contextId: u32, numHeaders: u32, endOfStream: bool): u32 {
  return ACTION_CONTINUE;
}

export function proxy_on_request_body(contextId: u32, size: u32, endOfStream: bool): u32 {
  if (!endOfStream) return ACTION_PAUSE; // let Envoy buffer until the whole body is there
  proxy_send_local_response(200, details, detailsSize, body, bodySize, headers, headersSize, -1);
  return ACTION_PAUSE;
}

function writeAscii(to: usize, text: string): void {
  for (let i = 0; i < text.length; i++) store<u8>(to + <usize>i, <u8>text.charCodeAt(i));
}
