// OpenTelemetry through @opentelemetry/api only: the application registers whatever SDK and
// exporters it likes; without one, everything here is a no-op. Never a secret in an attribute.
import { metrics, trace, SpanStatusCode, type Counter, type Histogram, type MeterProvider } from "@opentelemetry/api";

export const INSTRUMENTATION_NAME = "@hexr/sdk";
export const SPAN_NAME = "hexr.tool.invoke";

interface Instruments {
  invocations: Counter;
  duration: Histogram;
  hits: Counter;
  misses: Counter;
}

let instrumentsFor: MeterProvider | undefined;
let instruments: Instruments | undefined;

/** Instruments of the meter provider registered now (an application may register it after import). */
function current(): Instruments {
  const provider = metrics.getMeterProvider();
  if (!instruments || instrumentsFor !== provider) {
    const meter = provider.getMeter(INSTRUMENTATION_NAME);
    instruments = {
      invocations: meter.createCounter("hexr.tool.invocations", { description: "Credential resolutions for a tool, by service" }),
      duration: meter.createHistogram("hexr.tool.duration", { description: "Time to resolve a tool's credential", unit: "ms" }),
      hits: meter.createCounter("hexr.cache.hits", { description: "Credentials answered from a cache, by tier" }),
      misses: meter.createCounter("hexr.cache.misses", { description: "Credentials not in the in-process cache" }),
    };
    instrumentsFor = provider;
  }
  return instruments;
}

export interface InvokeOutcome {
  /** "L1" for the in-process cache, else the sidecar's x-hexr-cache (L1, L2, L3, L1-stale). */
  cacheTier: string;
  /** Where the answer came from: "process" (in-process L1) or "sidecar". */
  source: "process" | "sidecar";
}

/** Runs one credential resolution inside a `hexr.tool.invoke` span and records the metrics. */
export async function instrumented<T extends InvokeOutcome>(service: string, region: string, work: () => Promise<T>): Promise<T> {
  const tracer = trace.getTracer(INSTRUMENTATION_NAME);
  const started = performance.now();
  return tracer.startActiveSpan(SPAN_NAME, { attributes: { service, region } }, async (span) => {
    const m = current();
    try {
      const outcome = await work();
      const durationMs = performance.now() - started;
      span.setAttributes({ cache_tier: outcome.cacheTier, cache_source: outcome.source, duration_ms: durationMs });
      m.invocations.add(1, { service });
      m.duration.record(durationMs, { service, cache_tier: outcome.cacheTier });
      if (outcome.source === "process") {
        m.hits.add(1, { service, tier: "L1", source: "process" });
      } else {
        m.misses.add(1, { service, tier: "L1", source: "process" });
        m.hits.add(1, { service, tier: outcome.cacheTier, source: "sidecar" });
      }
      return outcome;
    } catch (error) {
      const durationMs = performance.now() - started;
      const e = error as { type?: string; status?: number; message?: string };
      span.setAttributes({ duration_ms: durationMs, "error.type": e.type ?? "Error", ...(e.status ? { "http.status_code": e.status } : {}) });
      // The SDK's messages carry no secret (errors.ts); anything else is not described.
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.type ? e.message : "error" });
      m.invocations.add(1, { service, outcome: "error" });
      m.duration.record(durationMs, { service, cache_tier: "error" });
      throw error;
    } finally {
      span.end();
    }
  });
}

export const VAULT_SPAN_PREFIX = "hexr.vault.";

/** What a vault span may say: the operation, the name(s), the scope, the version and the outcome. Never a value. */
export interface VaultCall {
  /** Sets hexr.vault.{name|names|scope|version|status}. */
  set(key: "name" | "scope", value: string): void;
  set(key: "names", value: readonly string[]): void;
  set(key: "version" | "status", value: number): void;
  /** The sidecar's HTTP status, once it answered. */
  status: number | undefined;
}

/** hexr.vault.outcome of a failed call: what went wrong, in one word. */
export function vaultOutcome(error: { type?: string; status?: number }, status: number | undefined): string {
  if (status === undefined) {
    if (error.type === "BadRequest") return "invalid";
    if (error.type === "AuthenticationError") return "unauthenticated";
    return "unavailable";
  }
  if (status >= 200 && status < 300) return "malformed";
  const named: Record<number, string> = { 401: "unauthenticated", 403: "denied", 404: "not_found", 409: "conflict", 413: "too_large" };
  return named[status] ?? (status < 500 ? "rejected" : "unavailable");
}

/**
 * Runs one vault operation in its span hexr.vault.{operation}: hexr.vault.operation, what the
 * operation sets through `call`, hexr.vault.outcome ("ok", or vaultOutcome()); on error the span's
 * status is ERROR with the error's type as its message, `error.type` and `http.status_code`.
 * No exception is recorded on the span (its message and stack are not the span's business).
 */
export async function instrumentedVault<T>(operation: string, work: (call: VaultCall) => Promise<T>): Promise<T> {
  const tracer = trace.getTracer(INSTRUMENTATION_NAME);
  return tracer.startActiveSpan(VAULT_SPAN_PREFIX + operation, { attributes: { "hexr.vault.operation": operation } }, async (span) => {
    const call: VaultCall = {
      status: undefined,
      set(key: string, value: string | number | readonly string[]) {
        span.setAttribute(`hexr.vault.${key}`, value as string);
      },
    };
    try {
      const result = await work(call);
      span.setAttribute("hexr.vault.outcome", "ok");
      return result;
    } catch (error) {
      const e = error as { type?: string; status?: number };
      const type = typeof e.type === "string" ? e.type : "Error";
      span.setAttributes({ "hexr.vault.outcome": vaultOutcome(e, call.status), "error.type": type, ...(e.status ? { "http.status_code": e.status } : {}) });
      span.setStatus({ code: SpanStatusCode.ERROR, message: type });
      throw error;
    } finally {
      span.end();
    }
  });
}
