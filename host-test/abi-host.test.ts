// The host itself, checked with tiny WAT guests (support/wat-guest.ts) rather than the filter:
// startup order, status codes, header maps, buffers, pause and continue, local replies, calls,
// ticks, queues, shared data, metrics, logs, properties and traps, each as Envoy has them.

import { describe, expect, it } from "vitest";
import { GuestExit, LogLevel, ModuleRejected, ProxyWasmHost, Status, VmFailed, WasmTrap, type HostOptions } from "./host/index.ts";
import { parsePairs } from "./host/pairs.ts";
import { assemble, OUT_EXTRA, OUT_PTR, OUT_SIZE, OUT_U64, WatGuest } from "./support/wat-guest.ts";

const OUT = `(i32.const ${OUT_PTR}) (i32.const ${OUT_SIZE})`;

function hostFor(module: WebAssembly.Module, options: Partial<HostOptions> = {}): ProxyWasmHost {
  return new ProxyWasmHost({ wasm: module, ...options });
}

function reported(host: ProxyWasmHost, slot: number): number | undefined {
  return host.metrics.value(`r${slot}`);
}

function emitted(host: ProxyWasmHost, slot: number): string | undefined {
  return host.sharedData.read(`o${slot}`)?.text;
}

const REQUEST = { ":method": "POST", ":path": "/items?x=1", ":authority": "example", "Content-Type": "application/json", "x-remove-me": "1" };

describe("startup", () => {
  it("runs _initialize, context_create, vm_start and configure in cpp-host's order, each buffer in its callback", () => {
    const g = new WatGuest();
    const module = g.build(`
      (global $step (mut i32) (i32.const 0))
      (func $next (result i32) (global.set $step (i32.add (global.get $step) (i32.const 1))) (global.get $step))
      (func (export "_initialize") (call $report (i32.const 0) (call $next)))
      (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
        (call $report (i32.const 1) (call $next)) (call $report (i32.const 5) (local.get $id)) (call $report (i32.const 6) (local.get $parent)))
      (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32)
        (call $report (i32.const 2) (call $next)) (call $report (i32.const 7) (local.get $size))
        (drop (call $proxy_get_buffer_bytes (i32.const 6) (i32.const 0) (local.get $size) ${OUT})) (call $emit_out (i32.const 0))
        (call $report (i32.const 8) (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (i32.const 100) ${OUT}))
        (i32.const 1))
      (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
        (call $report (i32.const 3) (call $next))
        (drop (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (local.get $size) ${OUT})) (call $emit_out (i32.const 1))
        (i32.const 0))`);
    const host = hostFor(module, { vmConfiguration: "vm-conf", pluginConfiguration: "plugin-conf" });
    const vm = host.startVm();
    expect([0, 1, 2, 3].map((slot) => reported(host, slot))).toEqual([1, 2, 3, 4]);
    expect([reported(host, 5), reported(host, 6), reported(host, 7)]).toEqual([vm.root.id, 0, 7]);
    expect([emitted(host, 0), emitted(host, 1)]).toEqual(["vm-conf", "plugin-conf"]);
    expect(reported(host, 8)).toBe(Status.NotFound);
    expect(vm.vmStarted).toBe(true);
    expect(vm.configured).toBe(false);
  });

  it("refuses a module without the ABI marker or with an import Envoy does not provide", () => {
    const bare = assemble('(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 0)))');
    expect(() => hostFor(bare).startVm()).toThrow(ModuleRejected);
    const foreign = assemble(`(module (import "env" "abort" (func (param i32 i32 i32 i32))) (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1")) (func (export "malloc") (param i32) (result i32) (i32.const 0)))`);
    expect(() => hostFor(foreign).startVm()).toThrow(/env\.abort/);
  });
});

describe("header maps", () => {
  it("get, add, replace, remove and serialize with Envoy's rules and status codes", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
        (call $report (i32.const 0) (local.get $count))
        (call $report (i32.const 1) (call $proxy_get_header_map_value (i32.const 0) ${g.str("CONTENT-type")} ${OUT}))
        (call $emit_out (i32.const 0))
        (drop (call $proxy_add_header_map_value (i32.const 0) ${g.str("X-Added")} ${g.str("1")}))
        (drop (call $proxy_add_header_map_value (i32.const 0) ${g.str("x-added")} ${g.str("2")}))
        (drop (call $proxy_replace_header_map_value (i32.const 0) ${g.str("content-type")} ${g.str("text/plain")}))
        (call $report (i32.const 2) (call $proxy_remove_header_map_value (i32.const 0) ${g.str("x-remove-me")}))
        (call $report (i32.const 3) (call $proxy_remove_header_map_value (i32.const 0) ${g.str("absent")}))
        (call $report (i32.const 4) (call $proxy_get_header_map_value (i32.const 0) ${g.str("absent")} ${OUT}))
        (call $report (i32.const 5) (call $proxy_get_header_map_value (i32.const 9) ${g.str("a")} ${OUT}))
        (call $report (i32.const 6) (call $proxy_get_header_map_value (i32.const 0) (i32.const 0x7ffffff0) (i32.const 64) ${OUT}))
        (call $report (i32.const 7) (call $proxy_get_header_map_value (i32.const 2) ${g.str(":status")} ${OUT}))
        (call $report (i32.const 8) (call $proxy_get_header_map_pairs (i32.const 2) ${OUT}))
        (call $report (i32.const 9) (i32.load (i32.const ${OUT_SIZE})))
        (drop (call $proxy_get_header_map_pairs (i32.const 0) ${OUT}))
        (call $emit_out (i32.const 1))
        (i32.const 0))`);
    const host = hostFor(module);
    const stream = host.startVm().newHttpStream();
    stream.sendRequestHeaders(REQUEST, { endOfStream: true });
    expect(reported(host, 0)).toBe(5);
    expect(emitted(host, 0)).toBe("application/json");
    expect([2, 3, 4, 5, 6, 7, 8, 9].map((slot) => reported(host, slot))).toEqual([
      Status.Ok, Status.Ok, Status.NotFound, Status.BadArgument, Status.InvalidMemoryAccess, Status.BadArgument, Status.Ok, 0,
    ]);
    const expected = [[":method", "POST"], [":path", "/items?x=1"], [":authority", "example"], ["x-added", "1"], ["x-added", "2"], ["content-type", "text/plain"]];
    expect(parsePairs(Buffer.from(host.sharedData.read("o1")!.value))).toEqual(expected);
    expect(stream.forwardedRequest!.headers.entries()).toEqual(expected);
    expect(stream.forwardedRequest!.ended).toBe(true);
  });
});

describe("pause and continue", () => {
  const g = new WatGuest();
  // Pause on headers; count body calls and their sizes; continue the body at end of stream.
  // A tick (set up in configure) continues the request from the root context via the stream's id.
  const module = g.build(`
    (global $stream (mut i32) (i32.const 0))
    (global $bodyCalls (mut i32) (i32.const 0))
    (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
      (drop (call $proxy_set_tick_period_milliseconds (i32.const 10))) (i32.const 1))
    (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (global.set $stream (local.get $id)) (i32.const 1))
    (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $end i32) (result i32)
      (global.set $bodyCalls (i32.add (global.get $bodyCalls) (i32.const 1)))
      (call $report (i32.const 0) (global.get $bodyCalls))
      (call $report (i32.const 1) (local.get $size))
      (i32.xor (local.get $end) (i32.const 1)))
    (func (export "proxy_on_tick") (param $root i32)
      (if (global.get $stream) (then
        (call $report (i32.const 2) (call $proxy_set_effective_context (global.get $stream)))
        (call $report (i32.const 3) (call $proxy_continue_stream (i32.const 0)))
        (global.set $stream (i32.const 0)))))`);

  it("with allow_on_headers_stop_iteration, delivers the body to a paused filter, buffered, and sends all on at its end", () => {
    const host = hostFor(module, { allowOnHeadersStopIteration: true });
    const stream = host.startVm().newHttpStream();
    expect(stream.sendRequestHeaders(REQUEST)).toBe(1);
    expect(stream.sendRequestBody("abc", { endOfStream: false })).toBe(1);
    expect(stream.forwardedRequest).toBeUndefined();
    expect(stream.sendRequestBody("defg", { endOfStream: true })).toBe(0);
    expect([reported(host, 0), reported(host, 1)]).toEqual([2, 7]);
    expect(stream.forwardedRequest!.bodyText).toBe("abcdefg");
    expect(stream.forwardedRequest!.ended).toBe(true);
  });

  it("by Envoy's default, holds the body from a paused filter until it continues, then delivers it", () => {
    const host = hostFor(module);
    const stream = host.startVm().newHttpStream();
    stream.sendRequestHeaders(REQUEST);
    expect(stream.sendRequestBody("abc", { endOfStream: false })).toBeUndefined();
    expect(stream.sendRequestBody("defg", { endOfStream: true })).toBeUndefined();
    expect(reported(host, 0)).toBeUndefined();
    host.advance(10); // the tick continues the stream
    expect([reported(host, 2), reported(host, 3)]).toEqual([Status.Ok, Status.Ok]);
    expect([reported(host, 0), reported(host, 1)]).toEqual([1, 7]);
    expect(stream.continueCalls.request).toBe(1);
    expect(stream.forwardedRequest!.bodyText).toBe("abcdefg");
    expect(stream.forwardedRequest!.ended).toBe(true);
  });
});

describe("bodies", () => {
  it("reads, replaces and appends a request body with Envoy's copyFrom rules", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $end i32) (result i32)
        (drop (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 2) (i32.const 100) ${OUT}))
        (call $emit_out (i32.const 0))
        (call $report (i32.const 0) (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (local.get $size) ${g.str("REPLACED")}))
        (call $report (i32.const 1) (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 3) (i32.const 1) ${g.str("x")}))
        (call $report (i32.const 2) (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 1000) (i32.const 0) ${g.str("!")}))
        (call $report (i32.const 3) (call $proxy_set_buffer_bytes (i32.const 6) (i32.const 0) (i32.const 0) ${g.str("x")}))
        (call $report (i32.const 4) (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (i32.const 10) ${OUT}))
        (call $report (i32.const 5) (call $proxy_get_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 10) ${OUT}))
        (call $report (i32.const 6) (i32.load (i32.const ${OUT_SIZE})))
        (call $report (i32.const 7) (call $proxy_get_buffer_bytes (i32.const 9) (i32.const 0) (i32.const 10) ${OUT}))
        (i32.const 0))`);
    const host = hostFor(module);
    const stream = host.startVm().newHttpStream();
    stream.sendRequestHeaders(REQUEST);
    stream.sendRequestBody("original");
    expect(emitted(host, 0)).toBe("iginal");
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((slot) => reported(host, slot))).toEqual([
      Status.Ok, Status.BadArgument, Status.Ok, Status.BadArgument, Status.NotFound, Status.Ok, 0, Status.BadArgument,
    ]);
    expect(stream.forwardedRequest!.bodyText).toBe("REPLACED!");
  });
});

describe("local replies", () => {
  const g = new WatGuest();
  const module = g.build(`
    (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (drop (call $proxy_send_local_response (i32.const 403) ${g.str("denied")} ${g.str("nope")} ${g.pairs([["X-Why", "policy"]])} (i32.const -1)))
      (i32.const 0))
    (func (export "proxy_on_response_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (drop (call $proxy_get_header_map_value (i32.const 2) ${g.str(":status")} ${OUT}))
      (call $emit_out (i32.const 0))
      (call $report (i32.const 0) (local.get $end))
      (i32.const 0))
    (func (export "proxy_on_log") (param $id i32) (call $report (i32.const 1) (i32.const 1)))
    (func (export "proxy_on_done") (param $id i32) (result i32) (call $report (i32.const 2) (i32.const 2)) (i32.const 1))
    (func (export "proxy_on_delete") (param $id i32) (call $report (i32.const 3) (i32.const 3)))`);

  it("runs after the callback, travels the filter's own encoder path, and ends the stream", () => {
    const host = hostFor(module);
    const stream = host.startVm().newHttpStream();
    stream.sendRequestHeaders(REQUEST);
    expect(stream.forwardedRequest).toBeUndefined();
    expect(emitted(host, 0)).toBe("403");
    expect(reported(host, 0)).toBe(0); // the body follows the headers
    const response = stream.response!;
    expect(response.source).toBe("local");
    expect(response.headers.entries()).toEqual([[":status", "403"], ["x-why", "policy"], ["content-length", "4"], ["content-type", "text/plain"]]);
    expect(response.bodyText).toBe("nope");
    expect(stream.localReply?.details).toBe("denied");
    expect(stream.callbacks.map((record) => record.callback)).toEqual(["proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_response_body"]);
    expect(stream.state).toBe("complete");
    expect([1, 2, 3].map((slot) => reported(host, slot))).toEqual([1, 2, 3]);
    expect(stream.sendRequestBody("late")).toBeUndefined();
  });

  it("sends a HEAD request the headers without the body", () => {
    const host = hostFor(module);
    const stream = host.startVm().newHttpStream();
    stream.sendRequestHeaders({ ...REQUEST, ":method": "HEAD" }, { endOfStream: true });
    expect(stream.response!.headers.get("content-length")).toBe("4");
    expect(stream.response!.body.byteLength).toBe(0);
    expect(reported(host, 0)).toBe(1);
  });
});

describe("trailers, stream reset and replies on a started response", () => {
  const g = new WatGuest();
  const module = g.build(`
    (func (export "proxy_on_request_trailers") (param $id i32) (param $count i32) (result i32)
      (call $report (i32.const 0) (local.get $count))
      (drop (call $proxy_get_header_map_value (i32.const 1) ${g.str("grpc-status")} ${OUT}))
      (call $emit_out (i32.const 0))
      (drop (call $proxy_add_header_map_value (i32.const 1) ${g.str("x-trailer")} ${g.str("added")}))
      (i32.const 0))
    (func (export "proxy_on_response_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (drop (call $proxy_get_header_map_value (i32.const 2) ${g.str(":status")} ${OUT}))
      (if (i32.eq (i32.load8_u (i32.load (i32.const ${OUT_PTR}))) (i32.const 53)) ;; a 5xx from upstream
        (then (drop (call $proxy_send_local_response (i32.const 502) (i32.const 0) (i32.const 0) ${g.str("bad gateway")} (i32.const 0) (i32.const 0) (i32.const -1)))))
      (if (i32.eq (i32.load8_u (i32.load (i32.const ${OUT_PTR}))) (i32.const 52)) ;; a 4xx: reset the stream
        (then (call $report (i32.const 1) (call $proxy_close_stream (i32.const 1)))))
      (i32.const 0))`);

  function forwarded() {
    const host = hostFor(module);
    const stream = host.startVm().newHttpStream();
    stream.sendRequestHeaders(REQUEST);
    stream.sendRequestBody("body", { endOfStream: false });
    return { host, stream };
  }

  it("hands trailers to the filter and sends them on with its changes", () => {
    const { host, stream } = forwarded();
    stream.sendRequestTrailers({ "grpc-status": "0" });
    expect([reported(host, 0), emitted(host, 0)]).toEqual([1, "0"]);
    expect(stream.forwardedRequest!.ended).toBe(true);
    expect(stream.forwardedRequest!.trailers!.entries()).toEqual([["grpc-status", "0"], ["x-trailer", "added"]]);
    stream.sendResponseHeaders({ ":status": "200" });
    stream.sendResponseBody("ok", { endOfStream: false });
    expect(stream.response!.ended).toBe(false);
    stream.sendResponseTrailers({ "x-checksum": "abc" });
    expect(stream.response!.trailers!.entries()).toEqual([["x-checksum", "abc"]]);
    expect([stream.response!.bodyText, stream.response!.ended, stream.state]).toEqual(["ok", true, "complete"]);
  });

  it("sends a local reply made after the response started straight to the client", () => {
    const { stream } = forwarded();
    stream.sendResponseHeaders({ ":status": "503" });
    expect(stream.localReplies.map((reply) => reply.status)).toEqual([502]);
    expect(stream.response!.source).toBe("local");
    expect(stream.response!.status).toBe(502);
    expect(stream.response!.bodyText).toBe("bad gateway");
    expect(stream.callbacks.filter((record) => record.callback === "proxy_on_response_headers").length).toBe(1);
    expect(stream.state).toBe("complete");
    expect(stream.sendResponseBody("upstream body")).toBeUndefined();
  });

  it("resets the stream on proxy_close_stream", () => {
    const { host, stream } = forwarded();
    stream.sendResponseHeaders({ ":status": "404" });
    expect(reported(host, 1)).toBe(Status.Ok);
    expect(stream.state).toBe("reset");
    expect(stream.response).toBeUndefined();
  });
});

describe("http calls", () => {
  const g = new WatGuest();
  const headers = g.pairs([[":method", "GET"], [":path", "/v1/x"], [":authority", "svc"]]);
  const module = g.build(`
    (global $stream (mut i32) (i32.const 0))
    (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (global.set $stream (local.get $id))
      (call $report (i32.const 0) (call $proxy_http_call ${g.str("nowhere")} ${headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const ${OUT_EXTRA})))
      (call $report (i32.const 1) (call $proxy_http_call ${g.str("svc")} ${g.pairs([[":method", "GET"], [":authority", "svc"]])} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const ${OUT_EXTRA})))
      (call $report (i32.const 2) (call $proxy_http_call ${g.str("svc")} ${headers} ${g.str("ping")} (i32.const 0) (i32.const 0) (i32.const 100) (i32.const ${OUT_EXTRA})))
      (call $report (i32.const 3) (i32.load (i32.const ${OUT_EXTRA})))
      (i32.const 1))
    (func (export "proxy_on_http_call_response") (param $root i32) (param $token i32) (param $headers i32) (param $body i32) (param $trailers i32)
      (call $report (i32.const 4) (local.get $root))
      (call $report (i32.const 5) (local.get $headers))
      (call $report (i32.const 6) (local.get $body))
      (call $report (i32.const 7) (call $proxy_get_header_map_value (i32.const 6) ${g.str(":status")} ${OUT}))
      (call $emit_out (i32.const 0))
      (drop (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (local.get $body) ${OUT}))
      (call $emit_out (i32.const 1))
      (call $report (i32.const 8) (call $proxy_set_effective_context (global.get $stream)))
      (call $report (i32.const 9) (call $proxy_set_effective_context (i32.const 999)))
      (drop (call $proxy_send_local_response (i32.const 200) (i32.const 0) (i32.const 0) ${g.str("done")} (i32.const 0) (i32.const 0) (i32.const -1))))`);

  function callOnce() {
    const host = hostFor(module, { clusters: ["svc"] });
    const vm = host.startVm();
    const stream = vm.newHttpStream();
    stream.sendRequestHeaders(REQUEST);
    return { host, vm, stream };
  }

  it("refuses unknown clusters and missing pseudo-headers, and sends the call as Envoy's async client", () => {
    const { host } = callOnce();
    expect([0, 1, 2].map((slot) => reported(host, slot))).toEqual([Status.BadArgument, Status.BadArgument, Status.Ok]);
    const [call] = host.pendingHttpCalls();
    expect(reported(host, 3)).toBe(call.token);
    expect([call.cluster, call.method, call.path, call.authority, call.bodyText, call.timeoutMs]).toEqual(["svc", "GET", "/v1/x", "svc", "ping", 100]);
    expect(call.headers.get("content-length")).toBe("4");
  });

  it("delivers the answer to the root context, readable only then, and lets it act on the stream", () => {
    const { host, vm, stream } = callOnce();
    host.pendingHttpCalls()[0].respond({ status: 201, headers: { "x-a": "1" }, body: "pong" });
    expect([4, 5, 6, 7, 8, 9].map((slot) => reported(host, slot))).toEqual([vm.root.id, 2, 4, Status.Ok, Status.Ok, Status.BadArgument]);
    expect([emitted(host, 0), emitted(host, 1)]).toEqual(["201", "pong"]);
    expect(stream.response?.bodyText).toBe("done");
  });

  it("delivers a reset with no headers, and a timeout as Envoy's 504", () => {
    const reset = callOnce();
    reset.host.pendingHttpCalls()[0].reset();
    expect([5, 6, 7].map((slot) => reported(reset.host, slot))).toEqual([0, 0, Status.BadArgument]);

    const late = callOnce();
    late.host.advance(99);
    expect(reported(late.host, 5)).toBeUndefined();
    late.host.advance(1);
    expect(late.host.httpCalls[0].state).toBe("timed-out");
    expect([5, 6].map((slot) => reported(late.host, slot))).toEqual([3, 24]);
    expect([emitted(late.host, 0), emitted(late.host, 1)]).toEqual(["504", "upstream request timeout"]);
  });
});

describe("shared data", () => {
  // Headers: read the entry and remember its CAS. Body: write with that CAS.
  const g = new WatGuest();
  const module = g.build(`
    (global $cas (mut i32) (i32.const 0))
    (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (call $report (i32.const 0) (call $proxy_get_shared_data ${g.str("k")} ${OUT} (i32.const ${OUT_EXTRA})))
      (global.set $cas (i32.load (i32.const ${OUT_EXTRA})))
      (call $emit_out (i32.const 0))
      (i32.const 0))
    (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $end i32) (result i32)
      (drop (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (local.get $size) ${OUT}))
      (call $report (i32.const 1) (call $proxy_set_shared_data ${g.str("k")} (i32.load (i32.const ${OUT_PTR})) (local.get $size) (global.get $cas)))
      (i32.const 0))`);

  it("is shared by the VMs, with compare-and-swap on every write", () => {
    const host = hostFor(module);
    const [first, second] = [host.startVm(), host.startVm()];
    const a = first.newHttpStream();
    a.sendRequestHeaders(REQUEST);
    expect(reported(host, 0)).toBe(Status.NotFound);
    a.sendRequestBody("v-a"); // cas 0: unconditional
    expect(reported(host, 1)).toBe(Status.Ok);

    const b = second.newHttpStream();
    b.sendRequestHeaders(REQUEST);
    expect([reported(host, 0), emitted(host, 0)]).toEqual([Status.Ok, "v-a"]);
    host.sharedData.write("k", "from-test");
    b.sendRequestBody("v-b");
    expect(reported(host, 1)).toBe(Status.CasMismatch);
    expect(host.sharedData.read("k")?.text).toBe("from-test");

    const c = second.newHttpStream();
    c.sendRequestHeaders(REQUEST);
    c.sendRequestBody("v-c");
    expect(reported(host, 1)).toBe(Status.Ok);
    expect(host.sharedData.read("k")?.text).toBe("v-c");
  });
});

describe("ticks, queues and metrics", () => {
  it("ticks every period on the virtual clock until stopped", () => {
    const g = new WatGuest();
    const module = g.build(`
      (global $ticks (mut i32) (i32.const 0))
      (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
        (drop (call $proxy_set_tick_period_milliseconds (i32.const 100))) (i32.const 1))
      (func (export "proxy_on_tick") (param $root i32)
        (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
        (call $report (i32.const 0) (global.get $ticks))
        (drop (call $proxy_get_current_time_nanoseconds (i32.const ${OUT_U64})))
        (call $report (i32.const 1) (i32.wrap_i64 (i64.div_u (i64.load (i32.const ${OUT_U64})) (i64.const 1000000))))
        (if (i32.eq (global.get $ticks) (i32.const 3)) (then (drop (call $proxy_set_tick_period_milliseconds (i32.const 0))))))`);
    const host = hostFor(module, { startTimeMs: 0 });
    host.startVm();
    host.advance(250);
    expect([reported(host, 0), reported(host, 1)]).toEqual([2, 200]);
    host.advance(1000);
    expect([reported(host, 0), reported(host, 1)]).toEqual([3, 300]);
  });

  it("tells the registering root of every enqueued item, after the current call", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
        (drop (call $proxy_register_shared_queue ${g.str("jobs")} (i32.const ${OUT_EXTRA}))) (i32.const 1))
      (func (export "proxy_on_queue_ready") (param $root i32) (param $token i32)
        (call $report (i32.const 0) (call $proxy_dequeue_shared_queue (local.get $token) ${OUT}))
        (call $emit_out (i32.const 0))
        (call $report (i32.const 1) (call $proxy_dequeue_shared_queue (local.get $token) ${OUT}))
        (call $report (i32.const 2) (call $proxy_dequeue_shared_queue (i32.const 999) ${OUT})))
      (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
        (drop (call $proxy_resolve_shared_queue (i32.const 0) (i32.const 0) ${g.str("jobs")} (i32.const ${OUT_EXTRA})))
        (drop (call $proxy_enqueue_shared_queue (i32.load (i32.const ${OUT_EXTRA})) ${g.str("from-a-stream")}))
        (call $report (i32.const 3) (i32.const 1))
        (i32.const 0))`);
    const host = hostFor(module);
    host.startVm();
    expect(host.enqueue("jobs", "hello")).toBe(Status.Ok);
    expect([reported(host, 0), emitted(host, 0), reported(host, 1), reported(host, 2)]).toEqual([Status.Ok, "hello", Status.Empty, Status.NotFound]);
    expect(host.enqueue("nobody", "x")).toBe(Status.NotFound);
    host.vms[0].newHttpStream().sendRequestHeaders(REQUEST);
    expect(emitted(host, 0)).toBe("from-a-stream");
  });

  it("keeps one stat per name across VMs, with Envoy's rules per metric type", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
        (drop (call $proxy_define_metric (i32.const 0) ${g.str("requests")} (i32.const ${OUT_EXTRA})))
        (call $report (i32.const 0) (call $proxy_increment_metric (i32.load (i32.const ${OUT_EXTRA})) (i64.const 2)))
        (call $report (i32.const 1) (call $proxy_increment_metric (i32.load (i32.const ${OUT_EXTRA})) (i64.const -1)))
        (call $report (i32.const 2) (call $proxy_record_metric (i32.load (i32.const ${OUT_EXTRA})) (i64.const 3)))
        (call $report (i32.const 3) (call $proxy_define_metric (i32.const 7) ${g.str("bad")} (i32.const ${OUT_EXTRA})))
        (drop (call $proxy_define_metric (i32.const 2) ${g.str("latency")} (i32.const ${OUT_EXTRA})))
        (call $report (i32.const 4) (call $proxy_record_metric (i32.load (i32.const ${OUT_EXTRA})) (i64.const 42)))
        (call $report (i32.const 5) (call $proxy_get_metric (i32.load (i32.const ${OUT_EXTRA})) (i32.const ${OUT_U64})))
        (call $report (i32.const 6) (call $proxy_increment_metric (i32.const 4000) (i64.const 1)))
        (i32.const 1))`);
    const host = hostFor(module);
    host.startVm();
    host.startVm();
    expect([0, 1, 2, 3, 4, 5, 6].map((slot) => reported(host, slot))).toEqual([
      Status.Ok, Status.BadArgument, Status.Ok, Status.BadArgument, Status.Ok, Status.BadArgument, Status.NotFound,
    ]);
    expect(host.metrics.value("requests")).toBe(10);
    expect(host.metrics.get("latency")?.samples).toEqual([42, 42]);
  });
});

describe("root context shutdown", () => {
  it("waits for proxy_done when proxy_on_done answers false, then deletes the root", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
        (call $report (i32.const 0) (call $proxy_done)) (drop (call $proxy_set_tick_period_milliseconds (i32.const 50))) (i32.const 1))
      (func (export "proxy_on_done") (param $id i32) (result i32) (call $report (i32.const 1) (local.get $id)) (i32.const 0))
      (func (export "proxy_on_tick") (param $root i32) (call $report (i32.const 2) (call $proxy_done)))
      (func (export "proxy_on_delete") (param $id i32) (call $report (i32.const 3) (local.get $id)))`);
    const host = hostFor(module);
    const vm = host.startVm();
    expect(reported(host, 0)).toBe(Status.NotFound);
    vm.shutdown();
    expect([reported(host, 1), reported(host, 3)]).toEqual([vm.root.id, undefined]);
    host.advance(50);
    expect([reported(host, 2), reported(host, 3)]).toEqual([Status.Ok, vm.root.id]);
    host.advance(500); // the deleted root ticks no more
    expect(reported(host, 2)).toBe(Status.Ok);
  });
});

describe("logs, properties and traps", () => {
  it("logs proxy_log and stdout/stderr at Envoy's levels, dropping what is below the host's level", () => {
    const g = new WatGuest();
    const iovec = g.place(`${u32le(g.place("to stdout\n"))}${u32le(10)}`);
    const module = g.build(`
      (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
        (drop (call $proxy_log (i32.const 1) ${g.str("debug line")}))
        (drop (call $proxy_log (i32.const 4) ${g.str("error line")}))
        (call $report (i32.const 0) (call $proxy_log (i32.const 9) ${g.str("?")}))
        (call $report (i32.const 1) (call $fd_write (i32.const 1) (i32.const ${iovec}) (i32.const 1) (i32.const ${OUT_EXTRA})))
        (call $report (i32.const 2) (i32.load (i32.const ${OUT_EXTRA})))
        (call $report (i32.const 3) (call $fd_write (i32.const 7) (i32.const ${iovec}) (i32.const 1) (i32.const ${OUT_EXTRA})))
        (drop (call $proxy_get_log_level (i32.const ${OUT_EXTRA})))
        (call $report (i32.const 4) (i32.load (i32.const ${OUT_EXTRA})))
        (i32.const 1))`);
    const host = hostFor(module, { logLevel: LogLevel.Info });
    host.startVm();
    expect(host.logs.map(({ level, message, source }) => [level, message, source])).toEqual([
      [LogLevel.Error, "error line", "proxy_log"],
      [LogLevel.Info, "to stdout", "stdout"],
    ]);
    expect([0, 1, 2, 3, 4].map((slot) => reported(host, slot))).toEqual([Status.BadArgument, 0, 10, 8, LogLevel.Info]);
  });

  it("serves the stream's properties, derived request attributes and plugin tokens", () => {
    const g = new WatGuest();
    const get = (slot: number, path: string) => `
      (call $report (i32.const ${slot}) (call $proxy_get_property ${g.str(path)} ${OUT}))
      (call $emit_out (i32.const ${slot}))`;
    const module = g.build(`
      (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
        ${get(0, "connection\0uri_san_peer_certificate")}
        ${get(1, "metadata\0filter_metadata\0jwt\0payload\0sub")}
        ${get(2, "request\0url_path")}
        ${get(3, "plugin_root_id")}
        ${get(4, "metadata\0filter_metadata\0jwt\0payload\0missing")}
        ${get(5, "metadata\0filter_metadata\0jwt\0payload\0exp")}
        (call $report (i32.const 6) (call $proxy_set_property ${g.str("mine")} ${g.str("kept")}))
        ${get(7, "mine")}
        (i32.const 0))`);
    const host = hostFor(module, { rootId: "root-1" });
    const stream = host.startVm().newHttpStream({
      properties: {
        connection: { uri_san_peer_certificate: "spiffe://td/agent/t/a/r" },
        metadata: { filter_metadata: { jwt: { payload: { sub: "spiffe://td/x", exp: 2 } } } },
      },
    });
    stream.sendRequestHeaders(REQUEST);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((slot) => reported(host, slot))).toEqual([
      Status.Ok, Status.Ok, Status.Ok, Status.Ok, Status.NotFound, Status.Ok, Status.Ok, Status.Ok,
    ]);
    expect([0, 1, 2, 3, 7].map((slot) => emitted(host, slot))).toEqual(["spiffe://td/agent/t/a/r", "spiffe://td/x", "/items", "root-1", "kept"]);
    const exp = host.sharedData.read("o5")!.value;
    expect(new DataView(exp.buffer, exp.byteOffset, exp.byteLength).getFloat64(0, true)).toBe(2); // a Struct number is a double
  });

  it("turns unreachable and proc_exit into WasmTrap, and fails the VM for good", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
        (if (i32.eq (local.get $count) (i32.const 1)) (then (call $proc_exit (i32.const 3))))
        (unreachable))`);
    const host = hostFor(module);
    const vm = host.startVm();
    const trap = captureTrap(() => vm.newHttpStream().sendRequestHeaders(REQUEST));
    expect(trap.callback).toBe("proxy_on_request_headers");
    expect(trap.fault).toBeInstanceOf(WebAssembly.RuntimeError);
    expect(() => vm.newHttpStream()).toThrow(VmFailed);

    const exiting = host.startVm();
    const exit = captureTrap(() => exiting.newHttpStream().sendRequestHeaders({ ":path": "/" }));
    expect(exit.fault).toBeInstanceOf(GuestExit);
    expect((exit.fault as GuestExit).code).toBe(3);
  });

  it("allocates returned values with the guest's allocator, and none for an empty value", () => {
    const g = new WatGuest();
    const module = g.build(`
      (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
        (call $report (i32.const 0) (global.get $allocs))
        (drop (call $proxy_get_header_map_value (i32.const 0) ${g.str(":path")} ${OUT}))
        (call $report (i32.const 1) (global.get $allocs))
        (drop (call $proxy_get_header_map_value (i32.const 0) ${g.str("empty")} ${OUT}))
        (call $report (i32.const 2) (global.get $allocs))
        (call $report (i32.const 3) (i32.load (i32.const ${OUT_PTR})))
        (i32.const 0))`);
    const host = hostFor(module);
    host.startVm().newHttpStream().sendRequestHeaders({ ...REQUEST, empty: "" });
    const before = reported(host, 0)!;
    expect([reported(host, 1), reported(host, 2), reported(host, 3)]).toEqual([before + 1, before + 1, 0]);
  });
});

function captureTrap(run: () => void): WasmTrap {
  try {
    run();
  } catch (error) {
    if (error instanceof WasmTrap) return error;
    throw error;
  }
  throw new Error("expected a WasmTrap");
}

function u32le(value: number): string {
  return String.fromCharCode(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
}
