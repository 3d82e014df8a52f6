// The in-process L1 and the exchange, against a loopback stand-in for the sidecar: served from
// memory while now < expires_at - 600 s, per identity, bounded, concurrent resolutions of one key
// coalesced into one exchange; and the OpenTelemetry span and metrics of every resolution.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { metrics, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { HexrClient } from "../src/client.ts";
import { AuthenticationError, CredentialError } from "../src/errors.ts";
import { ANALYST, RESEARCHER, fixedIdentity, startFakeSidecar, unsignedJwt, type FakeSidecar } from "./helpers.ts";

let sidecar: FakeSidecar;
let token = unsignedJwt(RESEARCHER);
let client: HexrClient;

beforeAll(async () => {
  sidecar = await startFakeSidecar();
});
afterAll(async () => {
  await sidecar.close();
});
beforeEach(() => {
  sidecar.requests.length = 0;
  sidecar.lifetime = 3600;
  sidecar.delayMs = 0;
  sidecar.fail = undefined;
  token = unsignedJwt(RESEARCHER);
  client = new HexrClient({ sidecarUrl: sidecar.url, identity: fixedIdentity(() => token) });
});
afterEach(() => {
  client.close();
  vi.useRealTimers();
});

describe("the in-process L1", () => {
  it("answers the same identity, service and region from memory while now < expires_at - 600 s", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const first = await client.resolve("aws_s3", "us-west-2");
    expect([first.source, first.cacheTier]).toEqual(["sidecar", "L3"]);
    expect(sidecar.requests).toEqual([{ service: "aws_s3", region: "us-west-2", authorization: `Bearer ${token}` }]);
    const second = await client.resolve("aws_s3", "us-west-2");
    expect([second.source, second.cacheTier]).toEqual(["process", "L1"]);
    expect(second.answer).toBe(first.answer);
    // Another region, another service: other keys.
    await client.resolve("aws_s3", "eu-west-1");
    await client.resolve("aws_dynamodb", "us-west-2");
    expect(sidecar.requests).toHaveLength(3);

    // 1 s before the buffer: still memory. At the buffer: a new exchange.
    vi.setSystemTime(first.answer.expires_at * 1000 - 600_000 - 1000);
    expect((await client.resolve("aws_s3", "us-west-2")).source).toBe("process");
    token = unsignedJwt(RESEARCHER, 7200); // the JWT-SVID must outlive the jump
    vi.setSystemTime(first.answer.expires_at * 1000 - 600_000);
    const renewed = await client.resolve("aws_s3", "us-west-2");
    expect(renewed.source).toBe("sidecar");
    expect(renewed.answer.credentials).not.toEqual(first.answer.credentials);
    expect(sidecar.requests).toHaveLength(4);
  });

  it("keeps each identity's credentials apart", async () => {
    const a = await client.resolve("aws_s3");
    token = unsignedJwt(ANALYST);
    const b = await client.resolve("aws_s3");
    expect(b.source).toBe("sidecar");
    expect(b.answer.spiffe_id).toBe(ANALYST);
    expect(b.answer.credentials).not.toEqual(a.answer.credentials);
    token = unsignedJwt(RESEARCHER);
    expect((await client.resolve("aws_s3")).answer).toBe(a.answer);
    expect(sidecar.requests).toHaveLength(2);
  });

  it("coalesces concurrent resolutions of one key into one exchange", async () => {
    sidecar.delayMs = 100;
    const all = await Promise.all(Array.from({ length: 50 }, () => client.resolve("gcp_storage")));
    expect(sidecar.requests).toHaveLength(1);
    expect(new Set(all.map((r) => r.answer)).size).toBe(1);
    // Different keys are not coalesced with each other.
    await Promise.all([client.resolve("gcp_bigquery"), client.resolve("gcp_bigquery", "europe-west1"), client.resolve("gcp_bigquery")]);
    expect(sidecar.requests).toHaveLength(3);
  });

  it("shares a failure with the callers waiting for it, and caches none", async () => {
    sidecar.delayMs = 50;
    sidecar.fail = { status: 503, type: "CredentialError", message: "the credential injector is unavailable" };
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => client.resolve("aws_s3")));
    expect(sidecar.requests).toHaveLength(1);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toMatchObject({ name: "CredentialError", status: 503 });
    sidecar.fail = undefined;
    expect((await client.resolve("aws_s3")).source).toBe("sidecar");
  });

  it("is bounded per identity and in identities (least recently used out)", async () => {
    const small = new HexrClient({ sidecarUrl: sidecar.url, identity: fixedIdentity(() => token), maxEntriesPerIdentity: 3, maxIdentities: 2 });
    for (const region of ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"]) await small.resolve("aws_s3", region);
    expect(small.cachedEntries).toBe(3);
    expect((await small.resolve("aws_s3", "eu-west-1")).source).toBe("process");
    expect((await small.resolve("aws_s3", "us-east-1")).source).toBe("sidecar"); // evicted
    for (const tenant of ["t1", "t2", "t3"]) {
      token = unsignedJwt(`spiffe://hexr.local/agent/${tenant}/a/main`);
      await small.resolve("aws_s3");
    }
    expect(small.cachedEntries).toBe(2);
    small.close();
  });

  it("does not keep a credential already inside its buffer (answered, not cached)", async () => {
    sidecar.lifetime = 300;
    expect((await client.resolve("aws_s3")).source).toBe("sidecar");
    expect((await client.resolve("aws_s3")).source).toBe("sidecar");
    expect(client.cachedEntries).toBe(0);
  });

  it("maps the sidecar's errors and an unreachable sidecar, with no token in them", async () => {
    sidecar.fail = { status: 401, type: "AuthenticationError", message: "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)" };
    await expect(client.resolve("aws_s3")).rejects.toBeInstanceOf(AuthenticationError);
    sidecar.fail = { status: 403, type: "CredentialError", message: "the credential exchange was denied by policy" };
    await expect(client.resolve("aws_s3")).rejects.toMatchObject({ name: "CredentialError", status: 403 });
    const nowhere = new HexrClient({ sidecarUrl: "http://127.0.0.1:1", identity: fixedIdentity(() => token) });
    const error = await nowhere.resolve("aws_s3").catch((e) => e);
    expect(error).toBeInstanceOf(CredentialError);
    expect(error.status).toBe(503);
    expect(JSON.stringify(error) + String(error)).not.toContain(token.split(".")[2]);
    nowhere.close();
  });
});

describe("OpenTelemetry", () => {
  const spans = new InMemorySpanExporter();
  const exported = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: exported, exportIntervalMillis: 60_000 });
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const meterProvider = new MeterProvider({ readers: [reader] });

  beforeAll(() => {
    trace.setGlobalTracerProvider(tracerProvider);
    metrics.setGlobalMeterProvider(meterProvider);
  });
  afterAll(async () => {
    trace.disable();
    metrics.disable();
    await meterProvider.shutdown();
  });

  it("records a hexr.tool.invoke span and the metrics for each resolution, with no secret", async () => {
    await client.resolve("aws_s3", "us-west-2");
    await client.resolve("aws_s3", "us-west-2");
    const done = spans.getFinishedSpans().filter((s) => s.name === "hexr.tool.invoke");
    expect(done.map((s) => [s.attributes.service, s.attributes.region, s.attributes.cache_tier, s.attributes.cache_source])).toEqual([
      ["aws_s3", "us-west-2", "L3", "sidecar"],
      ["aws_s3", "us-west-2", "L1", "process"],
    ]);
    for (const s of done) expect(typeof s.attributes.duration_ms).toBe("number");
    const everything = JSON.stringify(done.map((s) => ({ a: s.attributes, e: s.events, st: s.status })));
    expect(everything).not.toMatch(/ASIA|secret-|session-|eyJ/);

    await reader.forceFlush();
    const found = new Map<string, { attributes: Record<string, unknown>; value: unknown }[]>();
    for (const rm of exported.getMetrics()) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) {
      found.set(m.descriptor.name, m.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value })));
    }
    expect(found.get("hexr.tool.invocations")).toEqual([{ attributes: { service: "aws_s3" }, value: 2 }]);
    expect(found.get("hexr.cache.hits")).toEqual(expect.arrayContaining([
      { attributes: { service: "aws_s3", tier: "L1", source: "process" }, value: 1 },
      { attributes: { service: "aws_s3", tier: "L3", source: "sidecar" }, value: 1 },
    ]));
    expect(found.get("hexr.cache.misses")).toEqual([{ attributes: { service: "aws_s3", tier: "L1", source: "process" }, value: 1 }]);
    const histogram = found.get("hexr.tool.duration")!;
    expect(histogram.map((p) => (p.value as { count: number }).count).reduce((a, b) => a + b, 0)).toBe(2);
  });

  it("marks a failed resolution's span as an error, with the error's type and no secret", async () => {
    spans.reset();
    sidecar.fail = { status: 403, type: "CredentialError", message: "the credential exchange was denied by policy" };
    await expect(client.resolve("aws_ec2")).rejects.toThrow(CredentialError);
    const [span] = spans.getFinishedSpans();
    expect(span.status.code).toBe(2);
    expect(span.attributes["error.type"]).toBe("CredentialError");
    expect(span.attributes["http.status_code"]).toBe(403);
  });
});
