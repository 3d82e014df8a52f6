// Metrics through the ABI, with the contract's names and types, and the rule that no credential
// (nor the agent's token) ever appears in a log line or a metric.

import { describe, expect, it } from "vitest";
import { LogLevel, MetricType, type ProxyWasmHost } from "./host/index.ts";
import {
  AGENT,
  answerInjector,
  answerWithCredential,
  BRIDGE_CLUSTER,
  cacheKey,
  cacheValue,
  credential,
  expectCachedReply,
  expectContractError,
  expectInjectorCall,
  L2_CONFIG,
  missL2,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;

const CONTRACT_METRICS: [RegExp, MetricType][] = [
  [/^hexr_tool_invocations\.service\.[a-z0-9]+_[a-z0-9_]+$/, MetricType.Counter],
  [/^hexr_cache_(hits|misses)\.tier\.L[123]$/, MetricType.Counter],
  [/^hexr_request_duration_ms$/, MetricType.Histogram],
  [/^hexr_(coalesced_requests|refresh_ahead_exchanges|stale_served|l1_evictions)$/, MetricType.Counter],
];

/** The filter hands its counters to Envoy on the tick, every metrics_flush_ms (default 1 s). */
const FLUSH_MS = 1000;

/** A counter as Envoy shows it once the filter's next flush has happened. */
function counter(host: ProxyWasmHost, name: string): number {
  host.advance(FLUSH_MS);
  return host.metrics.value(name) ?? 0;
}

function counters(host: ProxyWasmHost) {
  return {
    invocations: counter(host, "hexr_tool_invocations.service.aws_s3"),
    l1Hits: counter(host, "hexr_cache_hits.tier.L1"),
    l1Misses: counter(host, "hexr_cache_misses.tier.L1"),
    l2Hits: counter(host, "hexr_cache_hits.tier.L2"),
    l2Misses: counter(host, "hexr_cache_misses.tier.L2"),
    l3Hits: counter(host, "hexr_cache_hits.tier.L3"),
    l3Misses: counter(host, "hexr_cache_misses.tier.L3"),
    durations: host.metrics.get("hexr_request_duration_ms")?.samples.length ?? 0,
  };
}

describe("metric names and types", () => {
  it("defines only the contract's metrics, each with its type", () => {
    const { host, vm } = startFilter({ l2: L2_CONFIG });
    const stream = sendExchange(vm);
    missL2(host);
    answerWithCredential(expectInjectorCall(host, MTLS_S3), credential({ expiresAt: host.clock.nowSeconds + 3600 }));
    expect(stream.response?.status).toBe(200);
    for (const metric of host.metrics.all()) {
      const family = CONTRACT_METRICS.find(([pattern]) => pattern.test(metric.name));
      expect(family, `metric ${metric.name} is not in the contract`).toBeDefined();
      expect(metric.type, `type of ${metric.name}`).toBe(family![1]);
    }
    for (const name of ["hexr_tool_invocations.service.aws_s3", "hexr_cache_misses.tier.L1", "hexr_cache_misses.tier.L2", "hexr_cache_hits.tier.L3", "hexr_cache_misses.tier.L3", "hexr_request_duration_ms"]) {
      expect(host.metrics.get(name), name).toBeDefined();
    }
  });
});

describe("when counters reach Envoy", () => {
  it("adds them up in the VM and hands them over on the tick, not on every request", () => {
    const { host, vm } = startFilter();
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    for (let i = 0; i < 3; i++) sendExchange(vm);
    expect(host.metrics.value("hexr_cache_hits.tier.L1") ?? 0, "before the flush").toBe(0);
    host.advance(FLUSH_MS);
    expect(host.metrics.value("hexr_cache_hits.tier.L1")).toBe(3);
    expect(host.metrics.value("hexr_tool_invocations.service.aws_s3")).toBe(3);
  });

  it("flushes as often as metrics_flush_ms says", () => {
    const { host, vm } = startFilter({ metrics_flush_ms: 50 });
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    sendExchange(vm);
    host.advance(50);
    expect(host.metrics.value("hexr_cache_hits.tier.L1")).toBe(1);
  });
});

describe("what each tier counts", () => {
  it("counts an L1 hit, and does not time it (answered within its own callback)", () => {
    const { host, vm } = startFilter();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(issued));
    const before = counters(host);
    expectCachedReply(sendExchange(vm), "L1", issued);
    expect(counters(host)).toEqual({ ...before, invocations: before.invocations + 1, l1Hits: before.l1Hits + 1 });
  });

  it("counts an L1 miss answered by the injector as an L3 hit", () => {
    const { host, vm } = startFilter();
    const before = counters(host);
    sendExchange(vm);
    answerWithCredential(expectInjectorCall(host, MTLS_S3), credential({ expiresAt: host.clock.nowSeconds + 3600 }));
    expect(counters(host)).toEqual({ ...before, invocations: before.invocations + 1, l1Misses: before.l1Misses + 1, l3Hits: before.l3Hits + 1, durations: before.durations + 1 });
  });

  it("counts a failed exchange as an L3 miss", () => {
    const { host, vm } = startFilter();
    const before = counters(host);
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 503, contentType: "text/plain", body: "no healthy upstream" });
    expectContractError(stream, 503, "CredentialError");
    expect(counters(host)).toEqual({ ...before, invocations: before.invocations + 1, l1Misses: before.l1Misses + 1, l3Misses: before.l3Misses + 1, durations: before.durations + 1 });
  });

  it("counts an L2 hit and an L2 miss", () => {
    const { host, vm } = startFilter({ l2: L2_CONFIG });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const before = counters(host);
    sendExchange(vm);
    host.pendingHttpCalls()[0].respond({ status: 200, body: cacheValue(issued) });
    const afterHit = counters(host);
    expect(afterHit).toEqual({ ...before, invocations: before.invocations + 1, l1Misses: before.l1Misses + 1, l2Hits: before.l2Hits + 1, durations: before.durations + 1 });

    sendExchange(vm, { body: { service: "aws_s3", region: "us-west-2" } });
    missL2(host);
    answerWithCredential(expectInjectorCall(host, { ...MTLS_S3, region: "us-west-2" }), credential({ region: "us-west-2", expiresAt: host.clock.nowSeconds + 3600 }));
    expect(counters(host)).toEqual({
      ...afterHit,
      invocations: afterHit.invocations + 1,
      l1Misses: afterHit.l1Misses + 1,
      l2Misses: afterHit.l2Misses + 1,
      l3Hits: afterHit.l3Hits + 1,
      durations: afterHit.durations + 1,
    });
  });

  it("counts invocations per service", () => {
    const { host, vm } = startFilter();
    sendExchange(vm, { body: { service: "gcp_bigquery" } });
    sendExchange(vm, { body: { service: "gcp_bigquery" } });
    sendExchange(vm, { body: { service: "azure_openai" } });
    expect(counter(host, "hexr_tool_invocations.service.gcp_bigquery")).toBe(2);
    expect(counter(host, "hexr_tool_invocations.service.azure_openai")).toBe(1);
  });

  it("records the request's duration in milliseconds", () => {
    const { host, vm } = startFilter();
    sendExchange(vm);
    host.advance(25);
    answerWithCredential(expectInjectorCall(host, MTLS_S3), credential({ expiresAt: host.clock.nowSeconds + 3600 }));
    expect(host.metrics.get("hexr_request_duration_ms")?.samples).toEqual([25]);
  });
});

describe("no credential in logs or metrics", () => {
  it("keeps every secret of the injector's answers and the agent's token out of logs and metric names", () => {
    const { host, vm } = startFilter({ l2: L2_CONFIG }, { logLevel: LogLevel.Trace });
    const token = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImhleHIifQ.eyJzdWIiOiJzcGlmZmU6Ly9oZXhyLmxvY2FsIn0.SIGNATUREsecretPART";
    const secrets: string[] = [token];

    // L3, written through to L2 (whose PUT fails) and L1
    const viaInjector = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    secrets.push(...viaInjector.secrets);
    sendExchange(vm, { jwtSub: AGENT.dataPipeline, headers: { authorization: `Bearer ${token}` } });
    missL2(host);
    answerWithCredential(expectInjectorCall(host, { ...MTLS_S3, source: "jwt", authorization: `Bearer ${token}` }), viaInjector);
    bridgeCall(host, "PUT").respond({ status: 500, body: viaInjector.body });

    // L1
    sendExchange(vm, { jwtSub: AGENT.dataPipeline, headers: { authorization: `Bearer ${token}` } });

    // L2
    const viaBridge = credential({ service: "gcp_storage", region: "us-central1", expiresAt: host.clock.nowSeconds + 3600 });
    secrets.push(...viaBridge.secrets);
    sendExchange(vm, { body: { service: "gcp_storage" } });
    bridgeCall(host, "GET").respond({ status: 200, body: cacheValue(viaBridge) });

    // an injector error, and garbage from both tiers, carrying secrets
    const refused = credential({ service: "aws_sqs", expiresAt: host.clock.nowSeconds + 3600 });
    secrets.push(...refused.secrets);
    sendExchange(vm, { body: { service: "aws_sqs" } });
    missL2(host);
    answerInjector(expectInjectorCall(host, { ...MTLS_S3, service: "aws_sqs" }), { status: 500, body: refused.body, contentType: "text/plain" });
    const unparsable = credential({ service: "aws_lambda", expiresAt: host.clock.nowSeconds + 3600 });
    secrets.push(...unparsable.secrets);
    sendExchange(vm, { body: { service: "aws_lambda" } });
    bridgeCall(host, "GET").respond({ status: 200, body: `${unparsable.body}\u0000garbage` });
    bridgeCall(host, "PUT").respond({ status: 201 }); // the cross-pod lock
    bridgeCall(host, "GET").respond({ status: 404 }); // the lock holder's last look at L2
    answerInjector(expectInjectorCall(host, { ...MTLS_S3, service: "aws_lambda" }), { body: `${unparsable.body.slice(0, -3)}`, expiresHeader: "x" });

    const visible = [...host.logMessages(LogLevel.Trace), ...host.metrics.names(), ...host.notes];
    expect(visible.length).toBeGreaterThan(0);
    for (const secret of secrets) {
      for (const line of visible) expect(line, `a secret leaked into: ${line}`).not.toContain(secret);
    }
  });
});

/** The one pending call to the bridge with this method. */
function bridgeCall(host: ProxyWasmHost, method: string) {
  const calls = host.pendingHttpCalls().filter((call) => call.cluster === BRIDGE_CLUSTER && call.method === method);
  expect(calls.length, `pending bridge ${method}s`).toBe(1);
  return calls[0];
}
