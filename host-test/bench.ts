// `npm run bench:host`: the release module's size, and the time of whole request lifecycles through
// host-test on this machine — an L1 hit (the hot path: request in, local reply out, context gone)
// and an L3 exchange (L1 miss, the filter's injector call answered, reply, L1 filled).
// A benchmark, not a test: it prints figures against the targets and always exits 0.

import { cpus } from "node:os";
import { statSync } from "node:fs";
import { HeaderTemplate, type HttpCallResponse, ProxyWasmHost, type Vm } from "./host/index.ts";
import { AGENT, BRIDGE_CLUSTER, cacheKey, credential, INJECTOR, mtlsPeer, WASM_PATH } from "./support/exchange.ts";
import { OUT_EXTRA, OUT_PTR, OUT_SIZE, OUT_U64, WatGuest } from "./support/wat-guest.ts";

const SIZE_TARGET_BYTES = 64 * 1024;
const L1_TARGET_NS = 5_000;

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const PROPERTIES = mtlsPeer(AGENT.dataPipeline);
const BODY = Buffer.from('{"service":"aws_s3","region":"us-east-1"}');
const REQUEST = HeaderTemplate.of({
  ":method": "POST",
  ":path": "/exchange",
  ":authority": "127.0.0.1:15080",
  ":scheme": "http",
  "content-type": "application/json",
  "content-length": String(BODY.byteLength),
  "user-agent": "hexr-sdk/1.0",
  "x-request-id": "7d1e5bd4-0b8e-4a57-9d0c-2f1b5b8f1a11",
});

interface Figures {
  medianNs: number;
  p99Ns: number;
  meanNs: number;
}

/** Runs `lifecycle` `warmup` times unmeasured, then times each of `iterations` runs. */
function measure(lifecycle: () => void, between: () => void, warmup: number, iterations: number): Figures {
  for (let i = 0; i < warmup; i++) {
    lifecycle();
    between();
  }
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    lifecycle();
    samples[i] = Number(process.hrtime.bigint() - start);
    between();
  }
  samples.sort();
  return {
    medianNs: samples[Math.floor(iterations / 2)],
    p99Ns: samples[Math.floor(iterations * 0.99)],
    meanNs: samples.reduce((sum, sample) => sum + sample, 0) / iterations,
  };
}

function startVm(): { host: ProxyWasmHost; vm: Vm } {
  // The L3 lifecycle deletes its key between runs, which Envoy cannot: each run would count as a
  // new key against the caps, which are not what is measured here.
  const pluginConfiguration = { trust_domains: ["hexr.local"], max_keys_per_identity: 1_000_000, max_keys: 100_000_000 };
  const host = new ProxyWasmHost({ wasm: WASM_PATH, pluginConfiguration, clusters: [INJECTOR.cluster, BRIDGE_CLUSTER] });
  const vm = host.startVm();
  if (!vm.configured) throw new Error(`the filter rejected its configuration: ${host.logMessages().join(" | ")}`);
  return { host, vm };
}

function l1HitLifecycle(): Figures {
  const { host, vm } = startVm();
  const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
  host.sharedData.write(KEY, `${issued.expiresAt},${host.clock.nowSeconds}\n${issued.body}`);
  const lifecycle = () => {
    const stream = vm.newHttpStream({ properties: PROPERTIES });
    stream.sendRequestHeaders(REQUEST);
    stream.sendRequestBody(BODY);
  };
  lifecycle();
  const probe = vm.newHttpStream({ properties: PROPERTIES });
  probe.sendRequestHeaders(REQUEST);
  probe.sendRequestBody(BODY);
  if (probe.response?.headers.get("x-hexr-cache") !== "L1" || probe.state !== "complete") throw new Error("the L1 lifecycle did not end in an L1 reply");
  return measure(lifecycle, () => {}, 20_000, 200_000);
}

function l3Lifecycle(): Figures {
  const { host, vm } = startVm();
  const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
  const answer: HttpCallResponse = {
    status: 200,
    headers: HeaderTemplate.of({ "content-type": "application/json", "content-length": String(issued.body.length), "x-hexr-expires-at": String(issued.expiresAt) }),
    body: Buffer.from(issued.body),
  };
  const lifecycle = () => {
    const stream = vm.newHttpStream({ properties: PROPERTIES });
    stream.sendRequestHeaders(REQUEST);
    stream.sendRequestBody(BODY);
    host.httpCalls[host.httpCalls.length - 1].respond(answer);
    if (stream.response?.headers.get("x-hexr-cache") !== "L3") throw new Error("the L3 lifecycle did not end in an L3 reply");
  };
  // Outside the timing: forget the entry (so the next request misses L1 again) and the finished call.
  const forget = () => {
    host.sharedData.delete(KEY);
    host.httpCalls.length = 0;
  };
  return measure(lifecycle, forget, 5_000, 50_000);
}

/**
 * The host's own share of an L1 hit: a WAT guest that makes the same 6 hostcalls as the filter's L1
 * path (the header pairs, the identity property, the body, the clock, the L1 entry, the local
 * reply with the same six headers; counters reach Envoy on the tick) and does nothing else.
 */
function hostOnlyL1Lifecycle(): Figures {
  const g = new WatGuest();
  const out = `(i32.const ${OUT_PTR}) (i32.const ${OUT_SIZE})`;
  const now = `(drop (call $proxy_get_current_time_nanoseconds (i32.const ${OUT_U64})))`;
  const module = g.build(`
    (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
      (i32.const 1))
    (func (export "proxy_on_request_headers") (param $id i32) (param $count i32) (param $end i32) (result i32)
      (global.set $heap (i32.const 65536)) ;; one arena per request: the bump allocator never frees
      (drop (call $proxy_get_header_map_pairs (i32.const 0) ${out}))
      (drop (call $proxy_get_property ${g.str("connection\0uri_san_peer_certificate")} ${out}))
      (i32.const 0))
    (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $end i32) (result i32)
      (drop (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (local.get $size) ${out}))
      ${now}
      (drop (call $proxy_get_shared_data ${g.str(KEY)} ${out} (i32.const ${OUT_EXTRA})))
      (drop (call $proxy_send_local_response (i32.const 200) (i32.const 0) (i32.const 0)
        (i32.load (i32.const ${OUT_PTR})) (i32.load (i32.const ${OUT_SIZE}))
        ${g.pairs([
          ["content-type", "application/json"], ["x-hexr-cache", "L1"], ["x-hexr-spiffe-id", AGENT.dataPipeline],
          ["x-hexr-service", "aws_s3"], ["x-hexr-region", "us-east-1"], ["x-hexr-expires-at", "1767229200"],
        ])} (i32.const -1)))
      (i32.const 1))`);
  const host = new ProxyWasmHost({ wasm: module });
  const vm = host.startVm();
  host.sharedData.write(KEY, credential({ expiresAt: host.clock.nowSeconds + 3600 }).body);
  const lifecycle = () => {
    const stream = vm.newHttpStream({ properties: PROPERTIES });
    stream.sendRequestHeaders(REQUEST);
    stream.sendRequestBody(BODY);
  };
  return measure(lifecycle, () => {}, 20_000, 200_000);
}

function format(ns: number): string {
  return `${(ns / 1000).toFixed(2)} µs`.padStart(10);
}

const size = statSync(WASM_PATH).size;
console.log(`host-test benchmark — Node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores)`);
console.log(`release wasm        ${WASM_PATH}`);
console.log(`  size              ${size} bytes (${(size / 1024).toFixed(1)} KiB), target ≤ 64 KiB: ${size <= SIZE_TARGET_BYTES ? "met" : "MISSED"}`);
const l1 = l1HitLifecycle();
console.log(`L1-hit lifecycle    median ${format(l1.medianNs)}  p99 ${format(l1.p99Ns)}  mean ${format(l1.meanNs)}  (200000 runs), target median ≤ 5 µs: ${l1.medianNs <= L1_TARGET_NS ? "met" : "MISSED"}`);
const hostOnly = hostOnlyL1Lifecycle();
console.log(`  of which the host  median ${format(hostOnly.medianNs)}  p99 ${format(hostOnly.p99Ns)}  mean ${format(hostOnly.meanNs)}  (a WAT guest making the same hostcalls, doing nothing else)`);
const l3 = l3Lifecycle();
console.log(`L3 lifecycle        median ${format(l3.medianNs)}  p99 ${format(l3.p99Ns)}  mean ${format(l3.meanNs)}  (50000 runs)`);
