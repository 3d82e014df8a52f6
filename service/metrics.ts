// Prometheus metrics for the project's services (injector, bridge, vault), through OpenTelemetry:
// each service creates its instruments on `meter` and, when configured, serves them as Prometheus
// text on `GET /metrics` of a plain-HTTP listener of its own (never on the service's mTLS port:
// Prometheus scrapes without a client certificate). Off unless configured: then `meter` is a no-op
// and nothing listens. Never a token, key, secret value or unbounded identity in a label.
//
//   const metrics = ServiceMetrics.create("hexr-vault", config.metrics);  // null → off
//   const requests = metrics.meter.createCounter("hexr_vault_requests", {...});  // → hexr_vault_requests_total
//   const running = await metrics.serve();   // { url: "http://127.0.0.1:9466/metrics" } | null
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createNoopMeter, type Meter } from "@opentelemetry/api";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { resourceFromAttributes } from "@opentelemetry/resources";

export interface MetricsListen {
  host: string;
  port: number;
}

/** Default ports of the metrics listeners (documented in each service's README). */
export const DEFAULT_METRICS_PORTS = { injector: 9464, bridge: 9465, vault: 9466 } as const;
/** Loopback unless configured otherwise; in Kubernetes the chart sets 0.0.0.0 so that Prometheus reaches it. */
export const DEFAULT_METRICS_HOST = "127.0.0.1";
export const METRICS_PATH = "/metrics";

/** Histogram bounds for request and storage latencies, in seconds (1 ms to 10 s). */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface RunningMetrics {
  /** http://HOST:PORT/metrics */
  url: string;
  port: number;
  close(): Promise<void>;
}

export class ServiceMetrics {
  private constructor(
    readonly meter: Meter,
    private readonly listen: MetricsListen | null,
    private readonly provider: MeterProvider | null,
    private readonly exporter: PrometheusExporter | null,
  ) {}

  /** Metrics for `serviceName` (the resource's service.name), served on `listen`; null: off (a no-op meter). */
  static create(serviceName: string, listen: MetricsListen | null): ServiceMetrics {
    if (!listen) return new ServiceMetrics(createNoopMeter(), null, null, null);
    // The scope label adds nothing (one scope per service); target_info names the service.
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
    const provider = new MeterProvider({ resource: resourceFromAttributes({ "service.name": serviceName }), readers: [exporter] });
    return new ServiceMetrics(provider.getMeter(serviceName), listen, provider, exporter);
  }

  get enabled(): boolean {
    return this.exporter !== null;
  }

  /** Starts the listener (GET /metrics; everything else 404); null when metrics are off. */
  async serve(): Promise<RunningMetrics | null> {
    const { exporter, listen } = this;
    if (!exporter || !listen) return null;
    const server = http.createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0];
      if (path === METRICS_PATH && (request.method === "GET" || request.method === "HEAD")) {
        exporter.getMetricsRequestHandler(request, response);
        return;
      }
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("not found: GET /metrics\n");
    });
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
    return {
      url: `http://${host}:${port}${METRICS_PATH}`,
      port,
      close: async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await this.provider?.shutdown().catch(() => {});
      },
    };
  }
}

/** A `metrics` config section ({host, port}), as the injector's and the vault's JSON configs take it. */
export function parseMetricsSection(fields: { string(key: string, fallback?: string): string; integer(key: string, fallback: number | undefined, min: number, max: number): number }, defaultPort: number): MetricsListen {
  return { host: fields.string("host", DEFAULT_METRICS_HOST), port: fields.integer("port", defaultPort, 0, 65535) };
}

/** HTTP status as a bounded label value: the code itself (the services answer a fixed set of them). */
export function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : "other";
}
