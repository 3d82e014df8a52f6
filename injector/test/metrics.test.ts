// The injector's Prometheus metrics (injector/metrics.ts): off unless `metrics` is configured; then a
// plain-HTTP listener of its own serves GET /metrics and nothing else, with exchanges counted by
// bounded labels and never a token, a credential or an agent's identity.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { ANALYST_ID, DEFAULT_ROLE_ARN, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity, type TestIdentity } from "./helpers.ts";

let identity: TestIdentity;
let opa: OpaServer;
let moto: MotoServer;

beforeAll(async () => {
  identity = await testIdentity();
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
});

afterAll(async () => {
  await Promise.all([opa?.stop(), moto?.stop()]);
  await identity?.remove();
});

describe("GET /metrics", () => {
  it("counts exchanges by tool (service), provider, decision, outcome and status, times them, and shows no secret", async () => {
    const base = baseConfig(identity, opa);
    const off = await startCaptured({ ...base, aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } } });
    expect(off.metricsUrl, "off unless configured").toBeNull();
    await off.close();

    const injector = await startCaptured({ ...base, aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } }, metrics: { host: "127.0.0.1", port: 0 } });
    try {
      expect(injector.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const token = await identity.mint(ANALYST_ID);
      const tls = await sidecarTls(identity);
      const issued = await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: '{"service":"aws_s3"}', tls });
      expect(issued.status).toBe(200);
      const unknown = await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: '{"service":"aws_nope"}', tls });
      expect(unknown.status).toBe(400);

      const scrape = await fetch(injector.metricsUrl!);
      expect(scrape.status).toBe(200);
      expect(scrape.headers.get("content-type")).toMatch(/^text\/plain/);
      const text = await scrape.text();
      expect(text).toMatch(/^hexr_injector_exchanges_total\{tool="aws_s3",provider="aws",decision="allow",outcome="issued",status="200"\} 1$/m);
      expect(text).toMatch(/^hexr_injector_exchanges_total\{tool="none",provider="none",decision="not_reached",outcome="bad_request",status="400"\} 1$/m);
      expect(text).toMatch(/^hexr_injector_exchange_duration_seconds_bucket\{provider="aws",outcome="issued",le="\+Inf"\} 1$/m);
      expect(text).toMatch(/^hexr_injector_opa_duration_seconds_count\{result="ok"\} 1$/m);
      const credentials = issued.json.credentials as Record<string, string>;
      for (const secret of [token, ...Object.values(credentials)]) expect(text.includes(secret), "a token or credential in /metrics").toBe(false);
      expect(text.includes(ANALYST_ID), "an agent's SPIFFE ID in /metrics").toBe(false);
      expect(text).not.toContain("aws_nope");
      // The listener serves /metrics only.
      expect((await fetch(injector.metricsUrl!.replace(/\/metrics$/, "/exchange"), { method: "POST" })).status).toBe(404);
    } finally {
      await injector.close();
    }
  });
});
