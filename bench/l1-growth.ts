// L1 as it fills, on a sidecar of its own that starts empty:
//  - memory (Envoy's RSS, its allocator, each wasm VM's heap) with 0, 10,000 and 100,000 entries;
//  - 1,000,000 requests on keys already warm (10,000 of them: a hit costs less there than at
//    100,000, so the million fits the time budget), memory sampled along: nothing new is stored,
//    so nothing may grow;
//  - L1-hit latency, and Envoy's CPU per hit, with 10, 1,000 and 100,000 distinct keys in L1,
//    requests cycling over all of them.
// Entries are loaded the way production loads them on a fresh pod: each key is asked for once and
// served from L2, which fills L1.
import type { EnvoySidecar } from "../stack/index.ts";
import { cacheKey, exchangeRequest, exchangeSpec, l2Value } from "./agent.ts";
import { CORES, processCpuSeconds } from "./cpu.ts";
import { sendAll } from "./fill.ts";
import type { L2Pool } from "./l2-pool.ts";
import { shareOf, tierCounters } from "./measure.ts";
import { sampleMemory, type MemorySample } from "./memory.ts";
import { errorCount, runWrk, type WrkResult } from "./wrk.ts";

export interface GrowthPlan {
  /** L1 sizes at which latency is measured, ascending. */
  latencyAt: number[];
  /** L1 sizes at which memory is sampled, ascending (0 = before any entry). */
  memoryAt: number[];
  /** L1 size at which the warm requests run (one of latencyAt or memoryAt). */
  warmAt: number;
  latencySeconds: number;
  /** Pause before the largest size's second latency run. */
  settleSeconds: number;
  /** Requests on warm keys after the last fill. */
  warmRequests: number;
  warmConnections: number;
  /** The warm requests go in chunks this long, with a memory sample after each. */
  warmChunkSeconds: number;
  /** Stop there even if fewer than warmRequests went (a slow or busy machine); the report says how many went. */
  warmMaxSeconds: number;
}

export interface GrowthLatency {
  keys: number;
  /** Seconds after L1 reached this size (0: right after loading). */
  afterSeconds: number;
  wrk: WrkResult;
  errors: number;
  l1Share: number;
  /** Envoy's CPU per request during the run, µs. */
  envoyCpuUs: number;
}

export interface WarmCheckpoint {
  requests: number;
  memory: MemorySample;
  rps: number;
  envoyCpuUs: number;
}

export interface GrowthResult {
  memory: { entries: number; sample: MemorySample }[];
  latency: GrowthLatency[];
  /** The warm requests ran with this many entries in L1. */
  warmEntries: number;
  warm: WarmCheckpoint[];
  /** Bytes of one entry's own data: key + value ("{expires_at}\n{body}"). */
  entryBytes: { key: number; value: number; body: number };
}

export async function measureL1Growth(options: {
  sidecar: EnvoySidecar;
  pid: number;
  pool: L2Pool;
  token: string;
  spiffeId: string;
  credentialBody: string;
  plan: GrowthPlan;
  workDir: string;
  log: (line: string) => void;
}): Promise<GrowthResult> {
  const { sidecar, pid, pool, token, plan, log } = options;
  const largest = Math.max(...plan.latencyAt, ...plan.memoryAt);
  log(`L1 growth: putting ${largest} keys into L2`);
  await pool.ensure(largest);
  const memory: GrowthResult["memory"] = [];
  const latency: GrowthLatency[] = [];
  const sample = () => sampleMemory(pid, sidecar.adminSocket);

  // Exercise the filter without storing anything, so that "0 entries" is a VM that has run, not a
  // fresh one: a service the local allow-list denies is answered 403 by the filter itself.
  await sendAll({
    baseUrl: sidecar.agentUrl,
    count: 1000,
    request: () => exchangeRequest(token, "us-east-1", "aws_ec2"),
    expectStatus: 403,
  });

  // One wrk run cycling over the first `keys` keys, with the Envoy CPU it took.
  const cycle = async (keys: number, connections: number, seconds: number) => {
    const cpuBefore = processCpuSeconds(pid);
    const wrk = await runWrk({
      url: sidecar.agentUrl,
      request: exchangeSpec(token, "@KEY@", { prefix: pool.keys.prefix, start: 0, count: keys }),
      connections,
      seconds,
      cpu: CORES.loadGenerator,
      workDir: options.workDir,
    });
    return { wrk, envoyCpuUs: ((processCpuSeconds(pid) - cpuBefore) * 1e6) / Math.max(1, wrk.requests) };
  };

  let loaded = 0;
  let warm: WarmCheckpoint[] = [];
  const checkpoints = [...new Set([...plan.latencyAt, ...plan.memoryAt])].sort((a, b) => a - b);
  for (const size of checkpoints) {
    if (size > loaded) {
      log(`L1 growth: loading keys ${loaded} … ${size - 1} into L1 (each served once from L2)`);
      await sendAll({
        baseUrl: sidecar.agentUrl,
        count: size - loaded,
        request: (i) => exchangeRequest(token, pool.keys.region(loaded + i)),
        expectStatus: 200,
        expectHeader: ["x-hexr-cache", "L2"],
      });
      loaded = size;
    }
    if (plan.memoryAt.includes(size)) memory.push({ entries: size, sample: await sample() });
    if (plan.latencyAt.includes(size)) {
      const loadedAt = Date.now();
      await measureLatency(size, loadedAt);
      // At the largest size once more, a while later: a cost that stays is not the aftermath of loading.
      if (size === Math.max(...plan.latencyAt)) {
        await new Promise((resolve) => setTimeout(resolve, plan.settleSeconds * 1000));
        await measureLatency(size, loadedAt);
      }
    }
    if (size === plan.warmAt) warm = await warmRequests(size);
  }

  async function measureLatency(keys: number, loadedAt: number): Promise<void> {
    const afterSeconds = Math.round((Date.now() - loadedAt) / 1000);
    const before = await tierCounters(sidecar.adminSocket);
    const { wrk, envoyCpuUs } = await cycle(keys, 1, plan.latencySeconds);
    const l1Share = shareOf("L1", before, await tierCounters(sidecar.adminSocket));
    latency.push({ keys, afterSeconds, wrk, errors: errorCount(wrk), l1Share, envoyCpuUs });
    log(`L1 growth: ${keys} keys (${afterSeconds} s after loading), p50 ${wrk.latencyUs.p50} µs, Envoy CPU ${Math.round(envoyCpuUs)} µs per hit`);
  }

  // Requests on warm keys only: nothing new to store, so memory must not move. The baseline is
  // taken after a first, shorter run, once the load's connections (and their buffers) exist.
  async function warmRequests(keys: number): Promise<WarmCheckpoint[]> {
    const first = await cycle(keys, plan.warmConnections, Math.min(5, plan.warmChunkSeconds));
    const checkpoints: WarmCheckpoint[] = [{ requests: 0, memory: await sample(), rps: first.wrk.rps, envoyCpuUs: first.envoyCpuUs }];
    let sent = 0;
    const maxChunks = Math.max(1, Math.floor(plan.warmMaxSeconds / plan.warmChunkSeconds));
    for (let chunk = 0; chunk < maxChunks && sent < plan.warmRequests; chunk++) {
      const { wrk, envoyCpuUs } = await cycle(keys, plan.warmConnections, plan.warmChunkSeconds);
      if (errorCount(wrk) > 0) throw new Error(`warm requests failed: ${JSON.stringify(wrk.errors)}`);
      sent += wrk.requests;
      checkpoints.push({ requests: sent, memory: await sample(), rps: wrk.rps, envoyCpuUs });
      log(`L1 growth: ${sent} requests on ${keys} warm keys, ${Math.round(wrk.rps)} req/s`);
    }
    return checkpoints;
  }

  const region = pool.keys.region(largest - 1);
  return {
    memory,
    latency,
    warmEntries: plan.warmAt,
    warm,
    entryBytes: {
      key: Buffer.byteLength(cacheKey(options.spiffeId, region)),
      value: l2Value(options.credentialBody, region, 2_000_000_000).length,
      body: l2Value(options.credentialBody, region, 2_000_000_000).length - "2000000000\n".length,
    },
  };
}
