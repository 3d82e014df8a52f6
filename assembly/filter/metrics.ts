// The filter's metrics, defined through the ABI; Envoy shows them with the wasmcustom. prefix.
// Every id is defined at configuration time so the request path only increments.
import { CACHE_TIERS } from "../contract";
import { defineMetric, incrementMetric, recordMetric } from "../proxy-wasm/host";
import { MetricType } from "../proxy-wasm/types";
import { message } from "../util/message";

/** Where an answer came from, in the contract's order (contract.json, cache_tiers). */
export const enum Tier { L1, L2, L3, L1Stale }

export function tierName(tier: Tier): string {
  return CACHE_TIERS[<i32>tier];
}

/**
 * Counters are added up in the VM and handed to Envoy on the tick (every metrics_flush_ms), not on
 * every request: each increment is a call into Envoy, and an L1 hit would otherwise make two of
 * them. Envoy's stats lag by at most the flush interval; the histogram is recorded at once.
 */
export class Metrics {
  /** slot → Envoy's metric id, and the count not yet handed to Envoy. */
  private ids: u32[] = [];
  private pending: i64[] = [];
  private dirty: bool = false;
  private invocations: Map<string, i32> = new Map<string, i32>();
  private hits: i32[] = [0, 0, 0];
  private misses: i32[] = [0, 0, 0];
  private durationId: u32;
  private coalescedSlot: i32;
  private refreshesSlot: i32;
  private staleSlot: i32;
  private evictedSlot: i32;

  constructor(services: string[]) {
    for (let i = 0; i < services.length; i++) {
      this.invocations.set(services[i], this.counter(message("hexr_tool_invocations.service.") + services[i]));
    }
    for (let tier = Tier.L1; tier <= Tier.L3; tier++) {
      this.hits[tier] = this.counter(message("hexr_cache_hits.tier.") + tierName(tier));
      this.misses[tier] = this.counter(message("hexr_cache_misses.tier.") + tierName(tier));
    }
    this.durationId = defineMetric(MetricType.Histogram, message("hexr_request_duration_ms"));
    this.coalescedSlot = this.counter(message("hexr_coalesced_requests"));
    this.refreshesSlot = this.counter(message("hexr_refresh_ahead_exchanges"));
    this.staleSlot = this.counter(message("hexr_stale_served"));
    this.evictedSlot = this.counter(message("hexr_l1_evictions"));
  }

  private counter(name: string): i32 {
    this.ids.push(defineMetric(MetricType.Counter, name));
    this.pending.push(0);
    return this.ids.length - 1;
  }

  private add(slot: i32, count: i64): void {
    this.pending[slot] += count;
    this.dirty = true;
  }

  /** Hands the counts added since the last flush to Envoy. */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    for (let slot = 0; slot < this.pending.length; slot++) {
      const count = this.pending[slot];
      if (count == 0) continue;
      this.pending[slot] = 0;
      incrementMetric(this.ids[slot], count);
    }
  }

  invocation(service: string): void {
    if (this.invocations.has(service)) this.add(this.invocations.get(service), 1);
  }

  hit(tier: Tier): void { this.add(this.hits[tier], 1); }

  miss(tier: Tier): void { this.add(this.misses[tier], 1); }

  recordDuration(milliseconds: u64): void { recordMetric(this.durationId, milliseconds); }

  /** A request answered from an exchange another request started. */
  coalesced(): void { this.add(this.coalescedSlot, 1); }

  refreshAhead(): void { this.add(this.refreshesSlot, 1); }

  staleServed(): void { this.add(this.staleSlot, 1); }

  evicted(count: i64): void { if (count > 0) this.add(this.evictedSlot, count); }
}
