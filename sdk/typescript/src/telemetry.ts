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
