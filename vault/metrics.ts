// The vault's Prometheus metrics (service/metrics.ts): requests by operation and status (reads,
// puts, denials), audit records appended, and the store's latency per call. Labels are bounded:
// never a secret's name or value, a namespace or a SPIFFE ID.
import { performance } from "node:perf_hooks";
import { LATENCY_BUCKETS_SECONDS, statusLabel, type ServiceMetrics } from "../service/metrics.ts";
import type { VaultStore } from "./store/store.ts";

/** The Prometheus names (counters get _total), for the dashboard's test and the README. */
export const VAULT_METRICS = {
  requests: "hexr_vault_requests",
  duration: "hexr_vault_request_duration_seconds",
  auditAppends: "hexr_vault_audit_appends",
  storeDuration: "hexr_vault_store_duration_seconds",
} as const;

export interface VaultMetrics {
  /**
   * One answered request: its operation (get, put, delete, list, batch, audit_list, audit_verify,
   * unknown), status and outcome ("ok", or the error's outcome: denied, not_found, ...).
   */
  request(operation: string, status: number, outcome: string, seconds: number): void;
  /** The store with every call timed, and the audit records it appends counted. */
  instrument(store: VaultStore): VaultStore;
}

export const NO_VAULT_METRICS: VaultMetrics = { request() {}, instrument: (store) => store };

/** Store calls that append audit records (their last argument), and the results that mean they were. */
const AUDITING: Readonly<Partial<Record<string, (result: unknown) => boolean>>> = {
  appendAudit: () => true,
  putVersion: (result) => result === "stored",
  deleteSecret: (result) => result === "deleted",
};

export function createVaultMetrics(metrics: ServiceMetrics): VaultMetrics {
  if (!metrics.enabled) return NO_VAULT_METRICS;
  const { meter } = metrics;
  const requests = meter.createCounter(VAULT_METRICS.requests, {
    description: "Requests answered, by operation, status and outcome (get 200 = a secret read, 403 = denied)",
  });
  const duration = meter.createHistogram(VAULT_METRICS.duration, {
    description: "Time to answer a request (the audit record included), by operation", unit: "s", advice: { explicitBucketBoundaries: LATENCY_BUCKETS_SECONDS },
  });
  const auditAppends = meter.createCounter(VAULT_METRICS.auditAppends, { description: "Audit records appended (result ok), or that could not be (result failed)" });
  // Failures start at 0, so that rate() sees the first one.
  for (const result of ["ok", "failed"]) auditAppends.add(0, { result });
  const storeDuration = meter.createHistogram(VAULT_METRICS.storeDuration, {
    description: "Time of each store call (SQLite or PostgreSQL), by method and result", unit: "s", advice: { explicitBucketBoundaries: LATENCY_BUCKETS_SECONDS },
  });
  return {
    request(operation, status, outcome, seconds) {
      requests.add(1, { operation, status: statusLabel(status), outcome });
      duration.record(seconds, { operation });
    },
    instrument(store) {
      return new Proxy(store, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver);
          if (typeof value !== "function" || typeof property !== "string" || property === "close") return value;
          return async (...args: unknown[]) => {
            const started = performance.now();
            const audited = AUDITING[property];
            const records = audited ? (args[args.length - 1] as readonly unknown[]).length : 0;
            try {
              const result = await value.apply(target, args);
              storeDuration.record((performance.now() - started) / 1000, { method: property, result: "ok" });
              if (audited && records > 0 && audited(result)) auditAppends.add(records, { result: "ok" });
              return result;
            } catch (error) {
              storeDuration.record((performance.now() - started) / 1000, { method: property, result: "error" });
              if (audited && records > 0) auditAppends.add(records, { result: "failed" });
              throw error;
            }
          };
        },
      });
    },
  };
}
