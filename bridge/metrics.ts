// The bridge's Prometheus metrics (service/metrics.ts): requests by operation and status, their
// latency, Valkey failures, purges and revocations. Labels are bounded: never a key, a SPIFFE ID or
// a value.
import { LATENCY_BUCKETS_SECONDS, statusLabel, type ServiceMetrics } from "../service/metrics.ts";

/** The Prometheus names (counters get _total), for the dashboard's test and the README. */
export const BRIDGE_METRICS = {
  requests: "hexr_bridge_requests",
  duration: "hexr_bridge_request_duration_seconds",
  valkeyErrors: "hexr_bridge_valkey_errors",
  purgedKeys: "hexr_bridge_purged_keys",
  revocations: "hexr_bridge_revocations",
} as const;

/**
 * What a request asks, from its method and path alone (the filter's L2 calls are cred_get,
 * cred_put, lock_acquire, lock_release; the sidecars' and the injector's polls revocations_read).
 */
export type BridgeOperation =
  | "cred_get" | "cred_put" | "cred_delete" | "lock_acquire" | "lock_release" | "purge" | "revoke" | "revocations_read" | "healthz" | "other";

export function operationOf(method: string | undefined, path: string): BridgeOperation {
  if (path.startsWith("/v1/cred/")) return ({ GET: "cred_get", PUT: "cred_put", DELETE: "cred_delete" } as const)[method as "GET"] ?? "other";
  if (path.startsWith("/v1/locks/")) return ({ PUT: "lock_acquire", DELETE: "lock_release" } as const)[method as "PUT"] ?? "other";
  if (path === "/v1/purge" && method === "POST") return "purge";
  if (path === "/v1/revocations") return ({ POST: "revoke", GET: "revocations_read" } as const)[method as "POST"] ?? "other";
  if (path === "/healthz") return "healthz";
  return "other";
}

export interface BridgeMetrics {
  /** One answered request: its operation, status and time taken. */
  request(operation: BridgeOperation, status: number, seconds: number): void;
  valkeyError(operation: BridgeOperation): void;
  /** Keys deleted by a purge or a revocation. */
  purged(reason: "purge" | "revocation", deleted: number): void;
  revoked(): void;
}

export const NO_BRIDGE_METRICS: BridgeMetrics = { request() {}, valkeyError() {}, purged() {}, revoked() {} };

export function createBridgeMetrics(metrics: ServiceMetrics): BridgeMetrics {
  if (!metrics.enabled) return NO_BRIDGE_METRICS;
  const { meter } = metrics;
  const requests = meter.createCounter(BRIDGE_METRICS.requests, { description: "Requests answered, by operation and status (cred_get 200 = an L2 hit, 404 = a miss)" });
  const duration = meter.createHistogram(BRIDGE_METRICS.duration, {
    description: "Time to answer a request, by operation", unit: "s", advice: { explicitBucketBoundaries: LATENCY_BUCKETS_SECONDS },
  });
  const valkeyErrors = meter.createCounter(BRIDGE_METRICS.valkeyErrors, { description: "Requests answered 503 because Valkey failed or timed out, by operation" });
  const purgedKeys = meter.createCounter(BRIDGE_METRICS.purgedKeys, { description: "L2 keys deleted by POST /v1/purge (purge) and POST /v1/revocations (revocation)" });
  const revocations = meter.createCounter(BRIDGE_METRICS.revocations, { description: "Revocations recorded in the revocation log" });
  // Rare events start at 0, so that rate() and increase() see their first one (the label sets are fixed).
  for (const operation of ["cred_get", "cred_put", "cred_delete", "lock_acquire", "lock_release", "purge", "revoke", "revocations_read", "healthz"] as const) valkeyErrors.add(0, { operation });
  for (const reason of ["purge", "revocation"] as const) purgedKeys.add(0, { reason });
  revocations.add(0);
  return {
    request(operation, status, seconds) {
      requests.add(1, { operation, status: statusLabel(status) });
      duration.record(seconds, { operation });
    },
    valkeyError: (operation) => valkeyErrors.add(1, { operation }),
    purged: (reason, deleted) => purgedKeys.add(deleted, { reason }),
    revoked: () => revocations.add(1),
  };
}
