// Attacks from an agent process on the pod (it reaches every loopback port and the bridge, and holds
// its own SVID), each against the defence in the filter that stops it. The end-to-end attacks on the
// services are in e2e/.
import { describe, expect, it } from "vitest";
import {
  AGENT, BRIDGE_CLUSTER, cacheKey, cacheValue, credential, expectContractError, FAR_FUTURE_EXP, INJECTOR, jwtMetadata, L2_CONFIG, sendExchange,
  startFilter,
} from "./support/exchange.ts";

describe("a value planted in L2 under a victim's key", () => {
  it.each([
    ["another identity's credential", { spiffeId: AGENT.otherTenant }],
    ["the victim's credential for another service", { service: "aws_ec2" }],
    ["the victim's credential for another region", { region: "eu-west-1" }],
  ])("is never served: %s", (_, planted) => {
    const { host, vm } = startFilter({ l2: L2_CONFIG });
    const stream = sendExchange(vm); // the victim: data-pipeline, aws_s3, us-east-1
    const [lookup] = host.pendingHttpCalls();
    expect(decodeURIComponent(lookup.path!.slice("/v1/cred/".length))).toBe(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"));
    lookup.respond({ status: 200, body: cacheValue(credential({ ...planted, expiresAt: host.clock.nowSeconds + 3600 })) });
    expect(stream.response, "the planted value was not served").toBeUndefined();
    expect(host.sharedData.read(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1")), "nor stored in L1").toBeUndefined();
    // Treated as a miss: the filter goes on to exchange the victim's own credential.
    expect(host.pendingHttpCalls().map((call) => [call.cluster, call.method])).toEqual([[BRIDGE_CLUSTER, "PUT"]]);
  });
});

describe("two tokens in one request", () => {
  it.each([
    ["two authorization headers", [["authorization", "Bearer victim.jwt.svid"], ["authorization", "Bearer attacker.jwt.svid"]]],
    ["two tokens joined into one header", [["authorization", "Bearer victim.jwt.svid,Bearer attacker.jwt.svid"]]],
  ])("is refused before anything is looked up: %s", (_, tokens) => {
    const { host, vm } = startFilter();
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    const stream = vm.newHttpStream({ properties: { connection: { uri_san_peer_certificate: AGENT.dataPipeline } } });
    const body = JSON.stringify({ service: "aws_s3" });
    stream.sendRequestHeaders([
      [":method", "POST"], [":path", "/exchange"], [":authority", "127.0.0.1:15080"], [":scheme", "http"],
      ["content-type", "application/json"], ["content-length", String(body.length)], ...(tokens as [string, string][]),
    ]);
    stream.sendRequestBody(body);
    expectContractError(stream, 401, "AuthenticationError");
    expect(host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster)).toEqual([]);
  });
});

describe("what a failing key leaves in shared data", () => {
  it("is emptied on the tick once the failure is forgotten (250 ms)", () => {
    const { host, vm } = startFilter({ metrics_flush_ms: 50 });
    const stream = sendExchange(vm);
    const [call] = host.pendingHttpCalls();
    call.respond({ status: 503, body: JSON.stringify({ error: { type: "CredentialError", message: "STS is unreachable" } }) });
    expectContractError(stream, 503, "CredentialError");
    const marker = `inflight:${cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1")}`;
    expect(host.sharedData.read(marker)?.text, "remembered for a moment").toContain("STS is unreachable");
    host.advance(300);
    expect(host.sharedData.read(marker)?.text, "then emptied").toBe("");
  });
});

describe("a flood of distinct keys", () => {
  /** One exchange answered by the injector for `region`; returns the stream. */
  function exchangeIn(filter: ReturnType<typeof startFilter>, region: string, mtls: string = AGENT.dataPipeline) {
    const stream = sendExchange(filter.vm, { mtls, body: { service: "aws_s3", region } });
    const call = filter.host.pendingHttpCalls().find((pending) => pending.cluster === INJECTOR.cluster);
    call?.respond({ status: 200, body: credential({ spiffeId: mtls, region, expiresAt: filter.host.clock.nowSeconds + 3600 }).body });
    return stream;
  }

  it("meets the identity's cap with the contract's 429, while its existing keys and other identities still work", () => {
    // Each credential costs two shared-data keys (its entry and its claim): a cap of 4 is two credentials.
    const filter = startFilter({ max_keys_per_identity: 4 });
    expect(exchangeIn(filter, "us-east-1").response?.status).toBe(200);
    expect(exchangeIn(filter, "us-west-2").response?.status).toBe(200);
    expectContractError(exchangeIn(filter, "eu-west-1"), 429, "CredentialError");
    expect(filter.host.pendingHttpCalls(), "nothing asked for the refused key").toEqual([]);
    expect(exchangeIn(filter, "us-west-2").response?.headers.get("x-hexr-cache"), "an existing key is still served").toBe("L1");
    expect(exchangeIn(filter, "eu-west-1", AGENT.reporter).response?.status, "another identity has its own count").toBe(200);
  });

  it("meets the sidecar's cap across identities, and the count survives a VM reload", () => {
    const filter = startFilter({ max_keys: 16 });
    const identities = Array.from({ length: 8 }, (_, i) => `spiffe://hexr.local/agent/acme-corp/agent-${i}/main`);
    for (const id of identities) expect(exchangeIn(filter, "us-east-1", id).response?.status).toBe(200);
    const reloaded = { host: filter.host, vm: filter.host.startVm() };
    expectContractError(exchangeIn(reloaded, "us-east-1", "spiffe://hexr.local/agent/acme-corp/agent-9/main"), 429, "CredentialError");
  });
});

describe("a JWT-SVID jwt_authn let through that the filter still refuses", () => {
  const CHECKED = { jwt_issuers: ["https://oidc.hexr.local"], jwt_audiences: ["hexr-credential-injector"] };
  const GOOD = { sub: AGENT.dataPipeline, iss: "https://oidc.hexr.local", aud: "hexr-credential-injector" };

  function served(config: object, claims: Record<string, unknown>): boolean {
    const { host, vm } = startFilter(config);
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    // jwtMetadata drops claims given as undefined, and adds an exp unless one is named.
    const stream = sendExchange(vm, { properties: jwtMetadata({ exp: FAR_FUTURE_EXP, ...claims }) });
    if (stream.response?.status === 200) return true;
    expectContractError(stream, 401, "AuthenticationError");
    return false;
  }

  it("accepts the token it expects, with aud as a string or as a list", () => {
    expect(served(CHECKED, GOOD)).toBe(true);
    expect(served(CHECKED, { ...GOOD, aud: ["someone-else", "hexr-credential-injector"] })).toBe(true);
  });

  it("remembers the last token by its claims, not by their order, and never mistakes another token for it", () => {
    const { host, vm } = startFilter(CHECKED);
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })));
    const ask = (claims: Record<string, unknown>) => sendExchange(vm, { properties: jwtMetadata(claims) }).response?.status;
    const reordered = { aud: GOOD.aud, exp: FAR_FUTURE_EXP, sub: GOOD.sub, iss: GOOD.iss };
    expect(ask({ ...GOOD, exp: FAR_FUTURE_EXP })).toBe(200);
    expect(ask(reordered), "the same claims listed in another order").toBe(200);
    expect(ask({ ...reordered, iss: "https://evil.example" }), "same subject, another issuer").toBe(401);
    expect(ask({ ...reordered, aud: "sts.amazonaws.com" }), "same subject, another audience").toBe(401);
    expect(ask({ ...reordered, exp: 1_000_000_000 }), "same subject, expired").toBe(401);
    expect(ask(reordered)).toBe(200);
  });

  it.each([
    ["no exp", { ...GOOD, exp: undefined }],
    ["an exp in the past", { ...GOOD, exp: 1_000_000_000 }],
    ["another issuer", { ...GOOD, iss: "https://evil.example" }],
    ["no issuer", { ...GOOD, iss: undefined }],
    ["another audience", { ...GOOD, aud: "sts.amazonaws.com" }],
    ["a list of other audiences", { ...GOOD, aud: ["sts.amazonaws.com", "api://AzureADTokenExchange"] }],
    ["no subject", { ...GOOD, sub: undefined }],
  ])("refuses %s with the JSON 401, though the identity's credential is in L1", (_, claims) => {
    expect(served(CHECKED, claims)).toBe(false);
  });
});
