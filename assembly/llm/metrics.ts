// The LLM route's metrics, one set per usage row (identity × provider × model). The tags travel in
// the name, after ";" (which no SPIFFE ID, provider or model name can contain), and Envoy's
// stats_tags (envoy/sidecar.yaml) turn them into labels:
//   wasmcustom.hexr_llm_input_tokens;provider=openai;model=gpt-4o;spiffe_id=spiffe://...
//   → envoy_wasmcustom_hexr_llm_input_tokens{provider="openai",model="gpt-4o",spiffe_id="spiffe://..."}
// Rows are bounded (llm.max_usage_rows), so the label sets are too.
import { defineMetric, incrementMetric } from "../proxy-wasm/host";
import { MetricType } from "../proxy-wasm/types";
import { TokenCounts } from "./usage";

const COUNTERS: string[] = [
  "hexr_llm_requests", "hexr_llm_input_tokens", "hexr_llm_cached_input_tokens", "hexr_llm_cache_write_tokens",
  "hexr_llm_output_tokens", "hexr_llm_cost_nanousd",
];

export class LlmMetrics {
  /** Row name → its counters' ids, defined on the row's first call in this VM. */
  private ids: Map<string, u32[]> = new Map<string, u32[]>();
  private refusedId: u32 = defineMetric(MetricType.Counter, "hexr_llm_refused");
  private budgetRefusedId: u32 = defineMetric(MetricType.Counter, "hexr_llm_budget_refused");
  private unreadableId: u32 = defineMetric(MetricType.Counter, "hexr_llm_unreadable_usage");

  record(row: string, provider: string, model: string, spiffeId: string, counts: TokenCounts, costNanoUsd: i64): void {
    let ids: u32[];
    if (this.ids.has(row)) {
      ids = this.ids.get(row);
    } else {
      ids = new Array<u32>(COUNTERS.length);
      const tags = ";provider=" + provider + ";model=" + model + ";spiffe_id=" + spiffeId;
      for (let i = 0; i < COUNTERS.length; i++) ids[i] = defineMetric(MetricType.Counter, COUNTERS[i] + tags);
      this.ids.set(row, ids);
    }
    incrementMetric(ids[0], 1);
    if (counts.input > 0) incrementMetric(ids[1], counts.input);
    if (counts.cachedInput > 0) incrementMetric(ids[2], counts.cachedInput);
    if (counts.cacheWrite > 0) incrementMetric(ids[3], counts.cacheWrite);
    if (counts.output > 0) incrementMetric(ids[4], counts.output);
    if (costNanoUsd > 0) incrementMetric(ids[5], costNanoUsd);
  }

  /** A call refused before it left (any reason but a budget). */
  refused(): void { incrementMetric(this.refusedId, 1); }

  budgetRefused(): void { incrementMetric(this.budgetRefusedId, 1); }

  /** An answer whose usage could not be read (none, too large, or not JSON): its tokens are not counted. */
  unreadable(): void { incrementMetric(this.unreadableId, 1); }
}
