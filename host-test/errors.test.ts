// Every error class of the contract: the filter's own rejections (400/405/413/415/401/403) and the
// mapping of non-200 answers from upstream. Each is {"error":{"type","message"}} as
// application/json, and none carries a credential.

import { describe, expect, it } from "vitest";
import {
  AGENT,
  answerInjector,
  cacheKey,
  cacheValue,
  credential,
  credentialEntries,
  type ErrorType,
  expectContractError,
  expectInjectorCall,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;

/** How long the filter remembers a failed exchange (assembly/resolve/claims.ts). */
const FAILURE_MEMORY_MS = 250;

describe("400/405/413/415 BadRequest", () => {
  it.each(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])("answers %s with 405 and allow: POST", (method) => {
    const { vm } = startFilter();
    const stream = sendExchange(vm, { method, body: "" });
    expectContractError(stream, 405, "BadRequest");
    expect(stream.response!.headers.getAll("allow")).toEqual(["POST"]);
  });

  it.each([
    ["text/plain", "text/plain"],
    ["form data", "application/x-www-form-urlencoded"],
    ["a lookalike", "application/jsonp"],
    ["no content type", null],
  ])("answers %s with 415", (_, contentType) => {
    expectContractError(sendExchange(startFilter().vm, { contentType }), 415, "BadRequest");
  });

  it("accepts application/json with parameters", () => {
    const { host, vm } = startFilter();
    sendExchange(vm, { contentType: "application/json; charset=utf-8" });
    expectInjectorCall(host, MTLS_S3);
  });

  it("answers a content-length over max_body_bytes with 413 before reading the body", () => {
    const { vm } = startFilter();
    const stream = vm.newHttpStream({ properties: { connection: { uri_san_peer_certificate: AGENT.dataPipeline } } });
    stream.sendRequestHeaders({ ":method": "POST", ":path": "/exchange", ":authority": "sidecar", "content-type": "application/json", "content-length": "4097" });
    expectContractError(stream, 413, "BadRequest");
  });

  it("answers a body over max_body_bytes without content-length (chunked) with 413", () => {
    const { vm } = startFilter();
    const body = JSON.stringify({ service: "aws_s3", padding: "x".repeat(5000) });
    expectContractError(sendExchange(vm, { body, contentLength: false, chunks: 4 }), 413, "BadRequest");
  });

  it("accepts a body of exactly max_body_bytes and rejects one byte more", () => {
    const { host, vm } = startFilter({ max_body_bytes: 100 });
    const exactly = `{"service":"aws_s3"}`.padEnd(100, " ");
    sendExchange(vm, { body: exactly });
    expectInjectorCall(host, MTLS_S3).reset();
    expectContractError(sendExchange(vm, { body: `${exactly} ` }), 413, "BadRequest");
    expectContractError(sendExchange(vm, { body: `${exactly} `, contentLength: false }), 413, "BadRequest");
  });

  it.each([
    ["an empty body", ""],
    ["a body that is not JSON", "service=aws_s3"],
    ["truncated JSON", '{"service": "aws_s3"'],
    ["a JSON array", '["aws_s3"]'],
    ["a JSON string", '"aws_s3"'],
    ["no service", "{}"],
    ["a numeric service", '{"service": 42}'],
    ["a null service", '{"service": null}'],
    ["a numeric region", '{"service": "aws_s3", "region": 1}'],
    ["an object region", '{"service": "aws_s3", "region": {"name": "us-east-1"}}'],
    ["an unknown service", '{"service": "aws_textract"}'],
    ["a service without provider", '{"service": "s3"}'],
    ["an upper-case region", '{"service": "aws_s3", "region": "US-EAST-1"}'],
    ["a region with an underscore", '{"service": "aws_s3", "region": "us_east_1"}'],
    ["a region with a colon", '{"service": "aws_s3", "region": "us:east"}'],
    ["an empty region", '{"service": "aws_s3", "region": ""}'],
    ["a 33-character region", `{"service": "aws_s3", "region": "${"a".repeat(33)}"}`],
    ["a region with a newline", '{"service": "aws_s3", "region": "us-east-1\\n"}'],
    ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
  ])("answers %s with 400", (_, body) => {
    expectContractError(sendExchange(startFilter().vm, { body }), 400, "BadRequest");
  });

  it("accepts a region of exactly 32 characters (where the configuration serves any region)", () => {
    const region = "a".repeat(32);
    const { host, vm } = startFilter({ regions: { aws: "any" } });
    sendExchange(vm, { body: { service: "aws_s3", region } });
    expectInjectorCall(host, { ...MTLS_S3, region });
  });
});

describe("401 AuthenticationError and 403 CredentialError", () => {
  it("answers a request without a verified identity with 401", () => {
    expectContractError(sendExchange(startFilter().vm, { properties: {} }), 401, "AuthenticationError");
  });

  const resources = {
    "acme-corp/data-pipeline": ["aws_s3", "gcp_bigquery:read"],
    "acme-corp/data-pipeline/main": ["azure_storage"],
    "acme-corp/reporter": ["aws_s3:read"],
  };

  it("answers a service outside the agent's resources with 403, without asking the injector", () => {
    const { host, vm } = startFilter({ resources });
    expectContractError(sendExchange(vm, { mtls: AGENT.reporter, body: { service: "aws_ec2" } }), 403, "CredentialError");
    expect(host.httpCalls).toEqual([]);
  });

  it("allows a listed service, also when listed with a scope", () => {
    const { host, vm } = startFilter({ resources });
    sendExchange(vm, { mtls: AGENT.reporter, body: { service: "aws_s3" } });
    expectInjectorCall(host, { ...MTLS_S3, spiffeId: AGENT.reporter }).reset();
    sendExchange(vm, { mtls: AGENT.dataPipelineWorker, body: { service: "gcp_bigquery" } });
    expectInjectorCall(host, { ...MTLS_S3, spiffeId: AGENT.dataPipelineWorker, service: "gcp_bigquery", region: "us-central1" });
  });

  it("lets the role key win over the agent key", () => {
    const { host, vm } = startFilter({ resources });
    sendExchange(vm, { mtls: AGENT.dataPipeline, body: { service: "azure_storage" } });
    expectInjectorCall(host, { ...MTLS_S3, service: "azure_storage", region: "eastus" }).reset();
    expectContractError(sendExchange(vm, { mtls: AGENT.dataPipeline, body: { service: "aws_s3" } }), 403, "CredentialError");
    sendExchange(vm, { mtls: AGENT.dataPipelineWorker, body: { service: "aws_s3" } });
    expectInjectorCall(host, { ...MTLS_S3, spiffeId: AGENT.dataPipelineWorker });
  });

  it("does not restrict an identity that has no key (OPA still decides)", () => {
    const { host, vm } = startFilter({ resources });
    sendExchange(vm, { mtls: AGENT.otherTenant, body: { service: "aws_ec2" } });
    expectInjectorCall(host, { ...MTLS_S3, spiffeId: AGENT.otherTenant, service: "aws_ec2" });
  });

  it("denies before looking at the cache: a cached credential is not served to a denied request", () => {
    const { host, vm } = startFilter({ resources });
    const issued = credential({ spiffeId: AGENT.reporter, service: "aws_ec2", expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(cacheKey(AGENT.reporter, "aws_ec2", "us-east-1"), cacheValue(issued));
    const stream = sendExchange(vm, { mtls: AGENT.reporter, body: { service: "aws_ec2" } });
    expectContractError(stream, 403, "CredentialError");
    for (const secret of issued.secrets) expect(stream.response!.bodyText).not.toContain(secret);
  });
});

describe("the injector's non-200 answers and failed calls", () => {
  // What Envoy itself answers for the injector's cluster when it is down, slow or refuses us.
  it.each([
    [503, "no healthy upstream", 503, "CredentialError"],
    [504, "upstream request timeout", 504, "CredentialError"],
    [502, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", 502, "CredentialError"],
    [500, "<html><body>internal error</body></html>", 502, "CredentialError"],
    [501, "", 502, "CredentialError"],
    [401, "Jwt verification fails", 401, "AuthenticationError"],
    [403, "RBAC: access denied", 403, "CredentialError"],
    [404, "", 502, "CredentialError"],
    [429, "too many requests", 502, "CredentialError"],
    [400, "bad request", 502, "CredentialError"],
    [302, "", 502, "CredentialError"],
  ] as const)("maps a non-JSON %i to %i %s", (upstreamStatus, body, status, type) => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: upstreamStatus, body, contentType: body === "" ? null : "text/plain" });
    expectContractError(stream, status, type);
    expect(stream.state).toBe("complete");
  });

  it("answers a failed call (no headers: reset, connection lost) with 503 CredentialError", () => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm);
    expectInjectorCall(host, MTLS_S3).reset();
    expectContractError(stream, 503, "CredentialError");
  });

  it.each([
    [403, { error: { type: "CredentialError", message: "OPA denied aws_s3 for acme-corp/data-pipeline" } }],
    [401, { error: { type: "AuthenticationError", message: "JWT-SVID expired" } }],
    [400, { error: { type: "BadRequest", message: "unknown region" } }],
    [502, { error: { type: "CredentialError", message: "STS AssumeRoleWithWebIdentity failed" } }],
    [503, { error: { type: "CredentialError", message: "injector overloaded" } }],
  ])("keeps the status, type and message of the injector's own contract error %i", (status, body) => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status, body: JSON.stringify(body), headers: { "x-injector": "1" } });
    expectContractError(stream, status, body.error.type as ErrorType);
    expect(stream.response!.json()).toEqual(body);
    expect(credentialEntries(host)).toEqual([]);
  });

  it.each([
    [500, { detail: "internal error" }, 502],
    [503, { error: "overloaded" }, 503],
    [500, { error: { type: "InternalError", message: "boom" } }, 502],
    [403, { error: { type: "CredentialError" } }, 403],
  ])("treats a JSON %i that is not a contract error like any other non-200", (status, body, mapped) => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status, body: JSON.stringify(body) });
    expectContractError(stream, mapped, mapped === 401 ? "AuthenticationError" : "CredentialError");
  });

  it("never caches a non-200", () => {
    const { host, vm } = startFilter();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 503, body: issued.body, expiresHeader: String(issued.expiresAt) });
    expectContractError(stream, 503, "CredentialError");
    for (const secret of issued.secrets) expect(stream.response!.bodyText).not.toContain(secret);
    expect(credentialEntries(host)).toEqual([]);
    host.advance(FAILURE_MEMORY_MS + 1);
    sendExchange(vm);
    expectInjectorCall(host, MTLS_S3);
  });

  it("answers with a 5xx for a moment after it, instead of calling a failing injector again", () => {
    const { host, vm } = startFilter();
    const first = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 503, body: "no healthy upstream", contentType: "text/plain" });
    expectContractError(first, 503, "CredentialError");
    host.advance(FAILURE_MEMORY_MS - 1);
    const remembered = sendExchange(vm);
    expectContractError(remembered, 503, "CredentialError");
    expect(host.pendingHttpCalls()).toEqual([]);
    host.advance(2);
    sendExchange(vm);
    expectInjectorCall(host, MTLS_S3);
  });
});
