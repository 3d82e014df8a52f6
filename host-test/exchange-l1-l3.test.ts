// The main path of docs/filter-contract.md: a miss makes the filter call the injector (L3) and
// answer with its 200, which also fills L1; the next request for the same key is served from L1
// by the filter alone, until the entry enters the refresh buffer before its expiry.

import { describe, expect, it } from "vitest";
import {
  AGENT,
  answerInjector,
  answerWithCredential,
  cacheKey,
  cacheValue,
  credential,
  credentialEntries,
  exchangeViaInjector,
  expectCachedReply,
  expectContractError,
  expectInjectorCall,
  expectInjectorReply,
  expectNothingOnward,
  INJECTOR,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;

describe("L3, then L1", () => {
  it("calls the injector on a miss with the identity's headers and the validated request, and holds the exchange", () => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm, { body: '{"service": "aws_s3", "region": "us-east-1", "note": "ignored"}' });
    expectInjectorCall(host, MTLS_S3);
    expect(stream.response).toBeUndefined();
    expectNothingOnward(stream);
  });

  it("sends the agent's authorization header with the call", () => {
    const { host, vm } = startFilter();
    const authorization = "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmUifQ.c2ln";
    sendExchange(vm, { jwtSub: AGENT.dataPipeline, headers: { authorization } });
    expectInjectorCall(host, { ...MTLS_S3, source: "jwt", authorization });
  });

  it("answers with the injector's 200 byte for byte, x-hexr-cache: L3, and stores it in L1", () => {
    const filter = startFilter();
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    const stream = exchangeViaInjector(filter, issued);
    expectInjectorReply(stream, issued);
    expect(stream.state).toBe("complete");
    expect(filter.host.sharedData.read(KEY)?.text).toBe(cacheValue(issued, filter.host.clock.nowSeconds));
  });

  it("serves the next request for the same key from L1 without calling the injector", () => {
    const filter = startFilter();
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    exchangeViaInjector(filter, issued);

    const second = sendExchange(filter.vm);
    expectCachedReply(second, "L1", issued);
    expect(second.state).toBe("complete");
    expect(filter.host.pendingHttpCalls()).toEqual([]);
  });

  it("serves an entry another worker wrote, in either value format", () => {
    const { host, vm } = startFilter();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 7200 });
    host.sharedData.write(KEY, cacheValue(issued, host.clock.nowSeconds - 60));
    expectCachedReply(sendExchange(vm), "L1", issued);
    host.sharedData.write(KEY, cacheValue(issued));
    expectCachedReply(sendExchange(vm), "L1", issued);
  });

  it("keys the cache by identity: another agent never gets this agent's credential", () => {
    const { host, vm } = startFilter();
    host.sharedData.write(KEY, cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    for (const other of [AGENT.reporter, AGENT.otherTenant, AGENT.dataPipelineWorker]) {
      const stream = sendExchange(vm, { mtls: other });
      expect(stream.response).toBeUndefined();
      expectInjectorCall(host, { ...MTLS_S3, spiffeId: other }).reset();
    }
  });

  it("keys the cache by service and region", () => {
    const { host, vm } = startFilter();
    host.sharedData.write(KEY, cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    sendExchange(vm, { body: { service: "aws_s3", region: "eu-west-1" } });
    expectInjectorCall(host, { ...MTLS_S3, region: "eu-west-1" }).reset();
    sendExchange(vm, { body: { service: "aws_sqs" } });
    expectInjectorCall(host, { ...MTLS_S3, service: "aws_sqs" }).reset();
  });

  it("takes the expiry from x-hexr-expires-at before the body's expires_at", () => {
    const { host, vm } = startFilter();
    const now = host.clock.nowSeconds;
    const issued = credential({ expiresAt: now + 7200 });
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { body: issued.body, expiresHeader: String(now + 3600) });
    expectInjectorReply(stream, issued, now + 3600);
    expect(host.sharedData.read(KEY)?.text).toBe(`${now + 3600},${now}\n${issued.body}`);
  });

  it("takes the expiry from the body's expires_at when the header is absent", () => {
    const { host, vm } = startFilter();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { body: issued.body });
    expectInjectorReply(stream, issued);
    expect(host.sharedData.read(KEY)?.text).toBe(cacheValue(issued, host.clock.nowSeconds));
    expectCachedReply(sendExchange(vm), "L1", issued);
  });

  it("answers a 200 without a usable expiry, but does not cache it", () => {
    const { host, vm } = startFilter();
    const unexpiring = { body: JSON.stringify({ service: "aws_s3", credentials: { AccessKeyId: "ASIANOEXPIRY" } }), expiresAt: 0, secrets: [] };
    for (const expiresHeader of [undefined, "soon", "-5", ""]) {
      const stream = sendExchange(vm);
      answerInjector(expectInjectorCall(host, MTLS_S3), { body: unexpiring.body, expiresHeader });
      expectInjectorReply(stream, unexpiring, null);
    }
    expect(credentialEntries(host)).toEqual([]);
  });

  it("does not cache a credential that already lies inside the refresh buffer", () => {
    const filter = startFilter();
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 300 });
    expectInjectorReply(exchangeViaInjector(filter, issued), issued);
    expect(credentialEntries(filter.host)).toEqual([]);
  });

  it("reads a body that arrives in several chunks", () => {
    const { host, vm } = startFilter();
    const body = JSON.stringify({ service: "gcp_bigquery", region: "europe-west4" });
    sendExchange(vm, { body, chunks: 5 });
    expectInjectorCall(host, { ...MTLS_S3, service: "gcp_bigquery", region: "europe-west4" }).reset();
    const issued = credential({ service: "gcp_bigquery", region: "europe-west4", expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "gcp_bigquery", "europe-west4"), cacheValue(issued));
    expectCachedReply(sendExchange(vm, { body, chunks: 3 }), "L1", issued);
  });

  it("ignores the query string of the exchange path", () => {
    const { host, vm } = startFilter();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(KEY, cacheValue(issued));
    expectCachedReply(sendExchange(vm, { path: "/exchange?trace=1" }), "L1", issued);
  });

  it("serves the configured exchange_path and calls the configured injector", () => {
    const injector = { cluster: "hexr_bridge", authority: "injector.internal", path: "/v2/exchange", timeoutMs: 1500 };
    const { host, vm } = startFilter({
      exchange_path: "/v1/credentials",
      injector: { cluster: injector.cluster, authority: injector.authority, path: injector.path, timeout_ms: injector.timeoutMs },
    });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const stream = sendExchange(vm, { path: "/v1/credentials" });
    answerWithCredential(expectInjectorCall(host, MTLS_S3, injector), issued);
    expectInjectorReply(stream, issued);
    const other = sendExchange(vm, { path: "/exchange" });
    expect(other.forwardedRequest?.ended).toBe(true);
    expect(host.pendingHttpCalls()).toEqual([]);
  });
});

describe("regions", () => {
  it("uses each provider's default region when the body names none (or null)", () => {
    const { host, vm } = startFilter();
    const cases = [
      [{ service: "aws_lambda" }, "us-east-1"],
      [{ service: "gcp_pubsub" }, "us-central1"],
      [{ service: "azure_openai", region: null }, "eastus"],
    ] as const;
    for (const [body, region] of cases) {
      sendExchange(vm, { body });
      expectInjectorCall(host, { ...MTLS_S3, service: body.service, region }).reset();
    }
  });

  it("uses configured default_regions", () => {
    const { host, vm } = startFilter({ default_regions: { aws: "eu-central-1", gcp: "asia-east1", azure: "westeurope" } });
    sendExchange(vm, { body: { service: "aws_s3" } });
    expectInjectorCall(host, { ...MTLS_S3, region: "eu-central-1" }).reset();
    sendExchange(vm, { body: { service: "azure_storage" } });
    expectInjectorCall(host, { ...MTLS_S3, service: "azure_storage", region: "westeurope" }).reset();
  });

  it("accepts extra_services beyond the catalog", () => {
    const { host, vm } = startFilter({ extra_services: ["aws_textract"] });
    sendExchange(vm, { body: { service: "aws_textract", region: "us-west-2" } });
    expectInjectorCall(host, { ...MTLS_S3, service: "aws_textract", region: "us-west-2" });
  });
});

describe("expiry and the refresh buffer", () => {
  it("serves an entry until expires_at − 1200 s by default (above the SDKs' refresh windows), then asks the injector again", () => {
    const filter = startFilter({ refresh_ahead_percent: 0 });
    const { host, vm } = filter;
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    exchangeViaInjector(filter, issued);

    host.advance((3600 - 1200 - 1) * 1000);
    expectCachedReply(sendExchange(vm), "L1", issued);

    host.advance(1000); // now == expires_at − 1200: no longer servable
    const late = sendExchange(vm);
    expect(late.response).toBeUndefined();
    const renewed = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), renewed);
    expectInjectorReply(late, renewed);
    expectCachedReply(sendExchange(vm), "L1", renewed);
  });

  it("honours refresh_buffer_seconds", () => {
    const { host, vm } = startFilter({ refresh_buffer_seconds: 60 });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 600 });
    host.sharedData.write(KEY, cacheValue(issued));
    host.advance((600 - 61) * 1000);
    expectCachedReply(sendExchange(vm), "L1", issued);
    host.advance(1000);
    sendExchange(vm);
    expectInjectorCall(host, MTLS_S3);
  });

  it("never serves an expired credential, even with no refresh buffer", () => {
    const { host, vm } = startFilter({ refresh_buffer_seconds: 0 });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 10 });
    host.sharedData.write(KEY, cacheValue(issued));
    host.advance(9_000);
    expectCachedReply(sendExchange(vm), "L1", issued);
    host.advance(1_000);
    sendExchange(vm);
    expectInjectorCall(host, MTLS_S3);
  });

  it("ignores a malformed L1 entry and asks the injector", () => {
    const { host, vm } = startFilter();
    for (const garbage of ["", "\n", "soon\n{}", `${host.clock.nowSeconds + 3600}`, "99999999999999999999999\n{}"]) {
      host.sharedData.write(KEY, garbage);
      const stream = sendExchange(vm);
      expect(stream.response, `entry ${JSON.stringify(garbage)}`).toBeUndefined();
      expectInjectorCall(host, MTLS_S3).reset();
      host.advance(251); // past the filter's memory of the failed call
    }
  });
});

describe("the injector's timeout", () => {
  it("gives up after injector.timeout_ms with Envoy's 504, mapped to a 504 CredentialError", () => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm);
    expectInjectorCall(host, MTLS_S3);
    host.advance(INJECTOR.timeoutMs - 1);
    expect(stream.response).toBeUndefined();
    host.advance(1);
    expectContractError(stream, 504, "CredentialError");
  });
});

describe("what every answer says about itself (for the sidecar's access log)", () => {
  it("names the verified identity, the service and the region, from every tier and in errors", () => {
    const { host, vm } = startFilter();
    host.sharedData.write(KEY, cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    const hit = sendExchange(vm);
    const named = (stream: typeof hit) => ["x-hexr-spiffe-id", "x-hexr-service", "x-hexr-region"].map((name) => stream.response?.headers.get(name));
    expect(named(hit)).toEqual([AGENT.dataPipeline, "aws_s3", "us-east-1"]);
    const denied = sendExchange(vm, { mtls: AGENT.reporter, body: { service: "aws_s3", region: "eu-west-1" } });
    host.pendingHttpCalls()[0].respond({ status: 403, body: JSON.stringify({ error: { type: "CredentialError", message: "denied by policy" } }) });
    expect(named(denied)).toEqual([AGENT.reporter, "aws_s3", "eu-west-1"]);
    const anonymous = sendExchange(vm, { properties: {} });
    expect(named(anonymous), "no identity, nothing named").toEqual([undefined, undefined, undefined]);
  });
});
