// One measured wrk run against one scenario, with what was true around it: the CPU the Envoy
// under test used per request, how busy the whole machine was, and which cache tier answered.
import { adminStats } from "../stack/envoy.ts";
import { busyShare, CORES, machineCpu, processCpuSeconds } from "./cpu.ts";
import type { RunShape, Scenario, Target, Tier } from "./scenarios.ts";
import { errorCount, runWrk, type WrkResult } from "./wrk.ts";

export type RunKind = "latency" | "throughput";

export interface Measurement {
  scenario: string;
  kind: RunKind;
  round: number;
  wrk: WrkResult;
  errors: number;
  /** CPU time of the Envoy under test per completed request, µs (all its threads). */
  envoyCpuUsPerRequest: number;
  /** Share of its one core the Envoy under test used during the run (≈ 1: it was the bottleneck). */
  envoyBusy: number;
  /** Share of both cores busy during the run, whoever used them. */
  machineBusy: number;
  /** Of the exchanges the sidecar answered from a cache tier, the share from the expected tier. */
  tierShare?: number;
  /** Connections the Envoy under test accepted during the run: wrk's own, if all were kept alive. */
  newConnections: number;
}

export async function measure(options: {
  scenario: Scenario;
  kind: RunKind;
  round: number;
  run: RunShape;
  workDir: string;
}): Promise<Measurement> {
  const { scenario, run } = options;
  const request = await scenario.prepare(run);
  const tiersBefore = scenario.tier ? await tierCounters(scenario.target.adminSocket) : undefined;
  const connectionsBefore = await acceptedConnections(scenario.target);
  const cpuBefore = processCpuSeconds(scenario.target.pid);
  const machineBefore = machineCpu();
  const wrk = await runWrk({
    url: scenario.target.url,
    request,
    connections: run.connections,
    seconds: run.seconds,
    cpu: CORES.loadGenerator,
    workDir: options.workDir,
  });
  const machineBusy = busyShare(machineBefore, machineCpu());
  const envoyCpu = processCpuSeconds(scenario.target.pid) - cpuBefore;
  const newConnections = (await acceptedConnections(scenario.target)) - connectionsBefore;
  scenario.finish?.(wrk);
  let tierShare: number | undefined;
  if (scenario.tier && tiersBefore) {
    const after = await tierCounters(scenario.target.adminSocket);
    tierShare = shareOf(scenario.tier, tiersBefore, after);
  }
  return {
    scenario: scenario.id,
    kind: options.kind,
    round: options.round,
    wrk,
    errors: errorCount(wrk),
    envoyCpuUsPerRequest: wrk.requests > 0 ? (envoyCpu * 1e6) / wrk.requests : NaN,
    envoyBusy: envoyCpu / wrk.durationSeconds,
    machineBusy,
    tierShare,
    newConnections,
  };
}

/** Downstream connections accepted so far on the target's listener (every variant keeps its stat prefix). */
async function acceptedConnections(target: Target): Promise<number> {
  const name = `http.${target.statPrefix ?? "agent_http"}.downstream_cx_total`;
  const total = (await adminStats(target.adminSocket, `^${name.replaceAll(".", "\\.")}$`)).get(name);
  if (total === undefined) throw new Error(`the Envoy of ${target.adminSocket} has no ${name}`);
  return total;
}

type TierCounts = Record<Tier, number>;

/** The filter's hexr_cache_hits.tier.* counters (an L3 answer counts as an L3 hit). */
export async function tierCounters(adminSocket: string): Promise<TierCounts> {
  // The filter hands its counters to Envoy on its tick (metrics_flush_ms, 250 in the local stack).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stats = await adminStats(adminSocket, "^wasmcustom\\.hexr_cache_hits\\.tier\\.");
  const read = (tier: Tier) => stats.get(`wasmcustom.hexr_cache_hits.tier.${tier}`) ?? 0;
  return { L1: read("L1"), L2: read("L2"), L3: read("L3") };
}

export function shareOf(tier: Tier, before: TierCounts, after: TierCounts): number {
  const delta = (t: Tier) => after[t] - before[t];
  const all = delta("L1") + delta("L2") + delta("L3");
  return all > 0 ? delta(tier) / all : 0;
}
