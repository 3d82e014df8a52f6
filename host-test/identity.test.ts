// Who is asking: the caller's SPIFFE ID comes only from a source Envoy verified (the mTLS peer's
// URI SAN, jwt_authn's verified payload) or from the configuration; never from anything the
// client sends. Every x-hexr-* header from the client is removed before the filter adds its own.

import { describe, expect, it } from "vitest";
import { ProxyWasmHost } from "./host/index.ts";
import {
  AGENT,
  BRIDGE_CLUSTER,
  cacheKey,
  cacheValue,
  credential,
  expectCachedReply,
  expectContractError,
  type ExpectedL3Call,
  expectInjectorCall,
  INJECTOR,
  jwtMetadata,
  mtlsPeer,
  sendExchange,
  startFilter,
  WASM_PATH,
} from "./support/exchange.ts";

const S3 = { service: "aws_s3", region: "us-east-1" } as const;

/** The request went to the injector with this identity (and nothing was answered yet). */
function expectIdentity(host: ProxyWasmHost, spiffeId: string, source: ExpectedL3Call["source"]): void {
  expectInjectorCall(host, { ...S3, spiffeId, source }).reset();
}

describe("identity sources", () => {
  it("takes the mTLS peer's URI SAN", () => {
    const { host, vm } = startFilter();
    sendExchange(vm, { mtls: AGENT.reporter });
    expectIdentity(host, AGENT.reporter, "mtls");
  });

  it("takes the sub of the JWT-SVID that jwt_authn verified (dynamic metadata)", () => {
    const { host, vm } = startFilter();
    sendExchange(vm, { jwtSub: AGENT.reporter });
    expectIdentity(host, AGENT.reporter, "jwt");
  });

  it("tries the sources in the configured order: the first that yields a value decides", () => {
    const both = { mtls: AGENT.dataPipeline, jwtSub: AGENT.reporter };
    const mtlsFirst = startFilter();
    sendExchange(mtlsFirst.vm, both);
    expectIdentity(mtlsFirst.host, AGENT.dataPipeline, "mtls");
    const jwtFirst = startFilter({ identity_sources: ["jwt", "mtls"] });
    sendExchange(jwtFirst.vm, both);
    expectIdentity(jwtFirst.host, AGENT.reporter, "jwt");
  });

  it("rejects with 401 when the deciding source's value is not a valid SPIFFE ID, even if a later one is", () => {
    const { vm } = startFilter();
    expectContractError(sendExchange(vm, { mtls: "spiffe://hexr.local/workload/x", jwtSub: AGENT.reporter }), 401, "AuthenticationError");
  });

  it("reads jwt_authn's metadata under the configured namespace and payload key", () => {
    const { host, vm } = startFilter({ jwt_metadata_namespace: "hexr.jwt", jwt_payload_key: "svid" });
    sendExchange(vm, { properties: jwtMetadata({ sub: AGENT.reporter }, "hexr.jwt", "svid") });
    expectIdentity(host, AGENT.reporter, "jwt");
    expectContractError(sendExchange(vm, { properties: jwtMetadata({ sub: AGENT.reporter }) }), 401, "AuthenticationError");
  });

  it("uses the static SPIFFE ID when static is a source", () => {
    const { host, vm } = startFilter({ identity_sources: ["static"], static_spiffe_id: AGENT.reporter });
    sendExchange(vm, { properties: {} });
    expectIdentity(host, AGENT.reporter, "static");
  });

  it("falls through to static only when the sources before it yield nothing", () => {
    const { host, vm } = startFilter({ identity_sources: ["mtls", "static"], static_spiffe_id: AGENT.reporter });
    sendExchange(vm, { mtls: AGENT.dataPipeline });
    expectIdentity(host, AGENT.dataPipeline, "mtls");
    sendExchange(vm, { properties: {} });
    expectIdentity(host, AGENT.reporter, "static");
  });

  it("ignores a source that is not configured", () => {
    expectContractError(sendExchange(startFilter({ identity_sources: ["jwt"] }).vm, { mtls: AGENT.dataPipeline }), 401, "AuthenticationError");
    expectContractError(sendExchange(startFilter({ identity_sources: ["mtls"] }).vm, { jwtSub: AGENT.dataPipeline }), 401, "AuthenticationError");
  });

  it("answers 401 when no source yields an identity", () => {
    const { vm } = startFilter();
    expectContractError(sendExchange(vm, { properties: {} }), 401, "AuthenticationError");
    expectContractError(sendExchange(vm, { properties: jwtMetadata({ iss: "spiffe://hexr.local" }) }), 401, "AuthenticationError");
  });

  it("accepts only the configured trust domains", () => {
    const { host, vm } = startFilter({ trust_domains: ["hexr.local"] });
    sendExchange(vm, { mtls: AGENT.dataPipeline });
    expectIdentity(host, AGENT.dataPipeline, "mtls");
    expectContractError(sendExchange(vm, { mtls: AGENT.otherTrustDomain }), 401, "AuthenticationError");
    expectContractError(sendExchange(vm, { jwtSub: AGENT.otherTrustDomain }), 401, "AuthenticationError");
  });

  it("accepts no trust domain unless configured: the configuration is refused without trust_domains", () => {
    for (const configuration of [{ trust_domains: [] }, { identity_sources: ["jwt"], trust_domains: [] }]) {
      const host = new ProxyWasmHost({ wasm: WASM_PATH, pluginConfiguration: configuration, clusters: [INJECTOR.cluster, BRIDGE_CLUSTER] });
      expect(host.startVm().configured, JSON.stringify(configuration)).toBe(false);
      expect(host.logMessages().join("\n")).toContain("trust_domains");
    }
    const { vm } = startFilter({ identity_sources: ["static"], static_spiffe_id: AGENT.dataPipeline, trust_domains: [] });
    expect(vm.configured, "a static identity needs no trust domain").toBe(true);
  });

  it.each([
    ["a missing role", "spiffe://hexr.local/agent/acme-corp/data-pipeline"],
    ["an extra segment", "spiffe://hexr.local/agent/acme-corp/data-pipeline/main/extra"],
    ["another kind of workload", "spiffe://hexr.local/service/acme-corp/data-pipeline/main"],
    ["another scheme", "https://hexr.local/agent/acme-corp/data-pipeline/main"],
    ["no trust domain", "spiffe:///agent/acme-corp/data-pipeline/main"],
    ["an empty tenant", "spiffe://hexr.local/agent//data-pipeline/main"],
    ["a colon in a part", "spiffe://hexr.local/agent/acme:corp/data-pipeline/main"],
    ["a trailing newline", `${AGENT.dataPipeline}\n`],
    ["an empty value", ""],
  ])("rejects a SPIFFE ID with %s", (_, spiffeId) => {
    const { host, vm } = startFilter();
    expectContractError(sendExchange(vm, { mtls: spiffeId }), 401, "AuthenticationError");
    expectContractError(sendExchange(vm, { properties: jwtMetadata({ sub: spiffeId }) }), 401, "AuthenticationError");
    expect(host.httpCalls).toEqual([]);
  });
});

describe("client-supplied identity is never trusted", () => {
  const spoofed = {
    "x-hexr-spiffe-id": AGENT.otherTenant,
    "X-Hexr-Tenant": "globex",
    "x-hexr-agent": "evil",
    "x-hexr-role": "admin",
    "x-hexr-identity-source": "static",
    "x-hexr-service": "aws_ec2",
    "x-hexr-region": "ap-south-1",
    "x-hexr-cache": "L1",
    "x-hexr-anything": "else",
  };

  it("sends only the verified identity to the injector, whatever x-hexr-* headers the client sent", () => {
    const { host, vm } = startFilter();
    sendExchange(vm, { headers: spoofed });
    expectIdentity(host, AGENT.dataPipeline, "mtls");
  });

  it("does not accept an identity from headers when Envoy verified none", () => {
    const { host, vm } = startFilter();
    const jwtPayloadHeader = Buffer.from(JSON.stringify({ sub: AGENT.dataPipeline })).toString("base64url");
    expectContractError(sendExchange(vm, { properties: {}, headers: { ...spoofed, "x-jwt-payload": jwtPayloadHeader } }), 401, "AuthenticationError");
    expect(host.httpCalls).toEqual([]);
  });

  it("does not serve another identity's cached credential to a spoofed header", () => {
    const { host, vm } = startFilter();
    host.sharedData.write(cacheKey(AGENT.otherTenant, "aws_s3", "us-east-1"), cacheValue(credential({ spiffeId: AGENT.otherTenant, expiresAt: host.clock.nowSeconds + 3600 })));
    const stream = sendExchange(vm, { mtls: AGENT.dataPipeline, headers: { "x-hexr-spiffe-id": AGENT.otherTenant } });
    expect(stream.response).toBeUndefined();
    expectIdentity(host, AGENT.dataPipeline, "mtls");
  });

  it("removes client x-hexr-* headers from every exchange, whether rejected or served", () => {
    const { host, vm } = startFilter();
    const rejected = sendExchange(vm, { properties: {}, headers: spoofed });
    expect(rejected.requestHeaders()!.entries().filter(([name]) => name.startsWith("x-hexr-"))).toEqual([]);
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(issued));
    const served = sendExchange(vm, { headers: spoofed });
    expectCachedReply(served, "L1", issued);
    expect(served.requestHeaders()!.entries().filter(([name]) => name.startsWith("x-hexr-"))).toEqual([]);
    expect(served.forwardedRequest?.headers.entries().filter(([name]) => name.startsWith("x-hexr-")) ?? []).toEqual([]);
  });

  it("reads the mTLS identity only from the verified connection property", () => {
    const { host, vm } = startFilter({ identity_sources: ["mtls"] });
    expectContractError(sendExchange(vm, { properties: {}, headers: { "x-forwarded-client-cert": `URI=${AGENT.dataPipeline}` } }), 401, "AuthenticationError");
    sendExchange(vm, { properties: mtlsPeer(AGENT.dataPipeline) });
    expectIdentity(host, AGENT.dataPipeline, "mtls");
  });
});
