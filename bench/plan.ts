// How long and how hard each part of the benchmark runs. The full plan keeps `npm run bench`
// under ten minutes on the 2-core machine; --quick is for checking the harness itself.
import type { GrowthPlan } from "./l1-growth.ts";

export interface Plan {
  /** Envoy worker threads (`--concurrency`) of every Envoy under test: one core's worth. */
  envoyConcurrency: number;
  /** Every scenario is measured this many times, interleaved, and the median is reported. */
  rounds: number;
  /** Closed loop, one connection: latency. */
  latencySeconds: number;
  /** Several connections: throughput. */
  throughputSeconds: number;
  throughputConnections: number;
  /** Unmeasured load on every scenario first (V8 tiers the wasm up, Node's JIT warms the injector). */
  warmupSeconds: number;
  /** perf samples the sidecar for this long during an L1-hit throughput run. */
  profileSeconds: number;
  growth: GrowthPlan;
}

export const FULL_PLAN: Plan = {
  envoyConcurrency: 1,
  rounds: 5,
  latencySeconds: 2,
  throughputSeconds: 2,
  throughputConnections: 16,
  warmupSeconds: 2,
  profileSeconds: 4,
  growth: {
    latencyAt: [10, 1_000, 100_000],
    memoryAt: [0, 10_000, 100_000],
    warmAt: 10_000,
    latencySeconds: 3,
    settleSeconds: 10,
    warmRequests: 1_000_000,
    warmConnections: 16,
    warmChunkSeconds: 20,
    warmMaxSeconds: 240,
  },
};

export const QUICK_PLAN: Plan = {
  envoyConcurrency: 1,
  rounds: 1,
  latencySeconds: 1,
  throughputSeconds: 1,
  throughputConnections: 16,
  warmupSeconds: 1,
  profileSeconds: 2,
  growth: {
    latencyAt: [10, 1_000, 10_000],
    memoryAt: [0, 1_000, 10_000],
    warmAt: 1_000,
    latencySeconds: 1,
    settleSeconds: 1,
    warmRequests: 20_000,
    warmConnections: 16,
    warmChunkSeconds: 2,
    warmMaxSeconds: 10,
  },
};
