// The injector's Prometheus metrics (service/metrics.ts): one count and one latency per exchange,
// labelled only with bounded values (the catalog's service, the provider, the outcome, the status,
// OPA's decision), never an identity, a token or a credential; and how stale the revocation log is.
// The service's label is `tool`, not `service`: a Prometheus ServiceMonitor gives every target a
// `service` label (the Kubernetes Service's name), which would rename ours to exported_service.
import { performance } from "node:perf_hooks";
import { LATENCY_BUCKETS_SECONDS, statusLabel, type ServiceMetrics } from "../service/metrics.ts";
import type { RevocationFollower } from "./revocations.ts";

/** The Prometheus names (counters get _total), for the dashboard's test and the README. */
export const INJECTOR_METRICS = {
  exchanges: "hexr_injector_exchanges",
  duration: "hexr_injector_exchange_duration_seconds",
  opaDuration: "hexr_injector_opa_duration_seconds",
  revocationStaleness: "hexr_injector_revocation_log_staleness_seconds",
  revokedPrefixes: "hexr_injector_revoked_prefixes",
} as const;

/** What one exchange's log line says, as far as the metrics need it. */
export interface ExchangeRecord {
  service?: string;
  provider?: string;
  decision: string;
  outcome: string;
  status: number;
  latency_ms: number;
}

export interface InjectorMetrics {
  exchange(record: ExchangeRecord): void;
  /** Times one OPA decision. */
  opa<T>(decide: () => Promise<T>): Promise<T>;
}

export function createInjectorMetrics(metrics: ServiceMetrics, clock: () => number = Date.now): InjectorMetrics & { follow(revocations: RevocationFollower): void } {
  const { meter } = metrics;
  const exchanges = meter.createCounter(INJECTOR_METRICS.exchanges, {
    description: "POST /exchange answers, by tool (the catalog's service), provider, OPA decision (allow, deny, error, not_reached), outcome and status",
  });
  const duration = meter.createHistogram(INJECTOR_METRICS.duration, {
    description: "Time to answer POST /exchange (OPA and the cloud exchange included), by provider and outcome",
    unit: "s",
    advice: { explicitBucketBoundaries: LATENCY_BUCKETS_SECONDS },
  });
  const opaDuration = meter.createHistogram(INJECTOR_METRICS.opaDuration, {
    description: "Time OPA took to decide, by result (ok, error)",
    unit: "s",
    advice: { explicitBucketBoundaries: LATENCY_BUCKETS_SECONDS },
  });
  const startedAt = clock();
  return {
    exchange(record) {
      const provider = record.provider ?? "none";
      exchanges.add(1, {
        tool: record.service ?? "none", provider, decision: record.decision, outcome: record.outcome, status: statusLabel(record.status),
      });
      duration.record(record.latency_ms / 1000, { provider, outcome: record.outcome });
    },
    async opa(decide) {
      const started = performance.now();
      let result = "error";
      try {
        const answer = await decide();
        result = "ok";
        return answer;
      } finally {
        opaDuration.record((performance.now() - started) / 1000, { result });
      }
    },
    follow(revocations) {
      // Since the last successful read of the bridge's log (since start while none has succeeded):
      // past revocation.max_log_staleness_ms every exchange is refused.
      meter.createObservableGauge(INJECTOR_METRICS.revocationStaleness, {
        description: "Seconds since the bridge's revocation log was last read (since start until the first read)",
        unit: "s",
      }).addCallback((result) => {
        const { lastReadAt } = revocations.status();
        result.observe(Math.max(0, (clock() - (lastReadAt ?? startedAt)) / 1000));
      });
      meter.createObservableGauge(INJECTOR_METRICS.revokedPrefixes, {
        description: "Revoked identity prefixes the injector refuses now",
      }).addCallback((result) => result.observe(revocations.status().revoked.length));
    },
  };
}
