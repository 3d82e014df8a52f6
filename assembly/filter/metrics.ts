// The filter's metrics, defined through the ABI; Envoy shows them with the wasmcustom. prefix.
// Every id is defined at configuration time so the request path only increments.
import { CACHE_TIERS } from "../contract";
import { defineMetric, incrementMetric, recordMetric } from "../proxy-wasm/host";
import { MetricType } from "../proxy-wasm/types";

/** Where an answer came from, in the contract's order (contract.json, cache_tiers). */
export const enum Tier { L1, L2, L3, L1Stale }

export function tierName(tier: Tier): string {
  return CACHE_TIERS[<i32>tier];
}

export class Metrics {
  private invocations: Map<string, u32> = new Map<string, u32>();
  private hits: u32[] = [0, 0, 0];
  private misses: u32[] = [0, 0, 0];
  private durationId: u32;
  private coalescedId: u32;
  private refreshesId: u32;
  private staleId: u32;
  private evictedId: u32;

  constructor(services: string[]) {
    for (let i = 0; i < services.length; i++) {
      this.invocations.set(services[i], defineMetric(MetricType.Counter, "hexr_tool_invocations.service." + services[i]));
    }
    for (let tier = Tier.L1; tier <= Tier.L3; tier++) {
      this.hits[tier] = defineMetric(MetricType.Counter, "hexr_cache_hits.tier." + tierName(tier));
      this.misses[tier] = defineMetric(MetricType.Counter, "hexr_cache_misses.tier." + tierName(tier));
    }
    this.durationId = defineMetric(MetricType.Histogram, "hexr_request_duration_ms");
    this.coalescedId = defineMetric(MetricType.Counter, "hexr_coalesced_requests");
    this.refreshesId = defineMetric(MetricType.Counter, "hexr_refresh_ahead_exchanges");
    this.staleId = defineMetric(MetricType.Counter, "hexr_stale_served");
    this.evictedId = defineMetric(MetricType.Counter, "hexr_l1_evictions");
  }

  invocation(service: string): void {
    if (this.invocations.has(service)) incrementMetric(this.invocations.get(service), 1);
  }

  hit(tier: Tier): void { incrementMetric(this.hits[tier], 1); }

  miss(tier: Tier): void { incrementMetric(this.misses[tier], 1); }

  recordDuration(milliseconds: u64): void { recordMetric(this.durationId, milliseconds); }

  /** A request answered from an exchange another request started. */
  coalesced(): void { incrementMetric(this.coalescedId, 1); }

  refreshAhead(): void { incrementMetric(this.refreshesId, 1); }

  staleServed(): void { incrementMetric(this.staleId, 1); }

  evicted(count: i64): void { if (count > 0) incrementMetric(this.evictedId, count); }
}
