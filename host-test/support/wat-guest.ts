// Tiny proxy-wasm guests written in WebAssembly text, for checking the host itself without the
// filter. binaryen (AssemblyScript's own dependency) assembles them.
//
// Every guest gets a prelude: the ABI marker, a bump allocator as proxy_on_memory_allocate (it counts
// its calls in global $allocs), the import of every hostcall, and two ways to tell the test what
// happened:
//   (call $report (slot) (value))        gauge "r{slot}" := value          → host.metrics.value("r3")
//   (call $emit (slot) (ptr) (len))      shared data "o{slot}" := bytes    → host.sharedData.read("o2")
//   (call $emit_out (slot))              emits the value a hostcall returned through OUT_PTR/OUT_SIZE
// Out-parameters go to fixed slots: OUT_PTR (16), OUT_SIZE (20), OUT_EXTRA (24), OUT_U64 (32).

import binaryen from "binaryen";

export const OUT_PTR = 16;
export const OUT_SIZE = 20;
export const OUT_EXTRA = 24;
export const OUT_U64 = 32;
const METRIC_ID = 8;
const REPORT_NAMES = 64;
const EMIT_NAMES = 96;
const FIRST_STRING = 256;
const HEAP_START = 65536;

const IMPORTS = `
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $proxy_get_log_level (param i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $proxy_get_current_time_nanoseconds (param i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $proxy_set_tick_period_milliseconds (param i32) (result i32)))
  (import "env" "proxy_get_property" (func $proxy_get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $proxy_set_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_status" (func $proxy_get_buffer_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $proxy_set_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $proxy_get_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $proxy_set_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size" (func $proxy_get_header_map_size (param i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $proxy_replace_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $proxy_remove_header_map_value (param i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $proxy_send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $proxy_continue_stream (param i32) (result i32)))
  (import "env" "proxy_close_stream" (func $proxy_close_stream (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $proxy_set_effective_context (param i32) (result i32)))
  (import "env" "proxy_done" (func $proxy_done (result i32)))
  (import "env" "proxy_http_call" (func $proxy_http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $proxy_get_shared_data (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $proxy_set_shared_data (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $proxy_register_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_resolve_shared_queue" (func $proxy_resolve_shared_queue (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $proxy_enqueue_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $proxy_dequeue_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $proxy_define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $proxy_increment_metric (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $proxy_record_metric (param i32 i64) (result i32)))
  (import "env" "proxy_get_metric" (func $proxy_get_metric (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
`;

const PRELUDE = `
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const ${HEAP_START}))
  (global $allocs (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.sub (i32.add (i32.div_u (global.get $heap) (i32.const 65536)) (i32.const 1)) (memory.size))))))
    (local.get $ptr))
  (func $report (param $slot i32) (param $value i32)
    (drop (call $proxy_define_metric (i32.const 1) (i32.add (i32.const ${REPORT_NAMES}) (i32.mul (local.get $slot) (i32.const 2))) (i32.const 2) (i32.const ${METRIC_ID})))
    (drop (call $proxy_record_metric (i32.load (i32.const ${METRIC_ID})) (i64.extend_i32_u (local.get $value)))))
  (func $emit (param $slot i32) (param $ptr i32) (param $len i32)
    (drop (call $proxy_set_shared_data (i32.add (i32.const ${EMIT_NAMES}) (i32.mul (local.get $slot) (i32.const 2))) (i32.const 2) (local.get $ptr) (local.get $len) (i32.const 0))))
  (func $emit_out (param $slot i32)
    (call $emit (local.get $slot) (i32.load (i32.const ${OUT_PTR})) (i32.load (i32.const ${OUT_SIZE}))))
  (data (i32.const ${REPORT_NAMES}) "r0r1r2r3r4r5r6r7r8r9")
  (data (i32.const ${EMIT_NAMES}) "o0o1o2o3o4o5o6o7o8o9")
`;

/** Builds one guest: strings are placed in memory with `str`, then `build` takes the functions. */
export class WatGuest {
  private next = FIRST_STRING;
  private readonly segments: string[] = [];

  /** Places `bytes` (a binary string: one char per byte) in memory; returns `(i32.const ptr) (i32.const len)`. */
  str(bytes: string): string {
    const ptr = this.place(bytes);
    return `(i32.const ${ptr}) (i32.const ${bytes.length})`;
  }

  /** Places `bytes` and returns its address. */
  place(bytes: string): number {
    const ptr = this.next;
    this.segments.push(`(data (i32.const ${ptr}) "${[...bytes].map((c) => `\\${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join("")}")`);
    this.next += (bytes.length + 8) & ~7;
    if (this.next >= HEAP_START) throw new Error("guest strings overflow the data area");
    return ptr;
  }

  /** Serialized header pairs (the ABI's map format), placed in memory: `(i32.const ptr) (i32.const len)`. */
  pairs(pairs: [string, string][]): string {
    const sizes = pairs.map(([name, value]) => u32(name.length) + u32(value.length)).join("");
    const data = pairs.map(([name, value]) => `${name}\0${value}\0`).join("");
    return this.str(u32(pairs.length) + sizes + data);
  }

  build(functions: string): WebAssembly.Module {
    return assemble(`(module ${IMPORTS} ${PRELUDE} ${functions} ${this.segments.join("\n")})`);
  }
}

/** Assembles a whole module as written (no prelude), e.g. to check what the host refuses. */
export function assemble(wat: string): WebAssembly.Module {
  const module = binaryen.parseText(wat);
  try {
    if (!module.validate()) throw new Error("the WAT module does not validate");
    return new WebAssembly.Module(module.emitBinary() as Uint8Array<ArrayBuffer>);
  } finally {
    module.dispose();
  }
}

function u32(value: number): string {
  return String.fromCharCode(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
}
