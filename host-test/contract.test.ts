// The shared contract vectors (contract/vectors.json), run against the filter through the ABI:
// the injector (injector/test/contract.test.ts) and the bridge (bridge/test/contract.test.ts) run
// the same cases, so all three agree on every service, region, SPIFFE ID and key.
import { describe, expect, it } from "vitest";
import { CATALOG, CONTRACT, REGIONS } from "../contract/index.ts";
import { caseName, VECTORS } from "../contract/vectors.ts";
import { ProxyWasmHost } from "./host/index.ts";
import {
  AGENT, answerWithCredential, BRIDGE_CLUSTER, credential, expectContractError, expectInjectorCall, INJECTOR, jwtMetadata,
  sendExchange, startFilter, WASM_PATH, withTrustDomains,
} from "./support/exchange.ts";

/**
 * The grammar tests name regions no provider serves ("a", 32 x's): the region allow-list is
 * lifted for them ("any"), and tested on its own below.
 */
const ANY_REGION = { regions: { aws: "any", gcp: "any", azure: "any" } };

/** Whether the filter accepts this plugin configuration (Envoy refuses the plugin when it does not). */
function accepts(configuration: object): boolean {
  const host = new ProxyWasmHost({ wasm: WASM_PATH, pluginConfiguration: withTrustDomains(configuration), clusters: [INJECTOR.cluster, BRIDGE_CLUSTER] });
  return host.startVm().configured === true;
}

describe("services", () => {
  it.each(VECTORS.services)("$value: the configuration accepts it as an extra service iff valid", (c) => {
    expect(accepts({ extra_services: [c.value] }), caseName(c)).toBe(c.valid);
  });

  it.each(VECTORS.services.filter((c) => c.valid))("$value is exchanged once configured", (c) => {
    const { host, vm } = startFilter({ ...ANY_REGION, extra_services: [c.value] });
    sendExchange(vm, { body: { service: c.value, region: "us-east-1" } });
    expect(expectInjectorCall(host, { spiffeId: AGENT.dataPipeline, source: "mtls", service: c.value, region: "us-east-1" })).toBeDefined();
  });

  it("aws_my-svc (once accepted by the injector only) is accepted by the filter", () => {
    const { host, vm } = startFilter({ extra_services: ["aws_my-svc"] });
    const stream = sendExchange(vm, { body: { service: "aws_my-svc" } });
    const issued = credential({ service: "aws_my-svc", expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_my-svc", region: "us-east-1" }), issued);
    expect(stream.response?.status).toBe(200);
  });
});

describe("regions", () => {
  it.each(VECTORS.regions)("$value: an exchange naming it is accepted iff valid", (c) => {
    const { host, vm } = startFilter(ANY_REGION);
    const stream = sendExchange(vm, { body: { service: "aws_s3", region: c.value } });
    if (c.valid) {
      expect(stream.response, caseName(c)).toBeUndefined();
      expect(host.pendingHttpCalls().map((call) => call.headers.get("x-hexr-region"))).toEqual([c.value]);
    } else {
      expectContractError(stream, 400, "BadRequest");
    }
  });

  it.each(VECTORS.regions)("$value: the configuration accepts it as a default region iff valid", (c) => {
    expect(accepts({ ...ANY_REGION, default_regions: { aws: c.value } }), caseName(c)).toBe(c.valid);
  });
});

describe("SPIFFE IDs", () => {
  it.each(VECTORS.spiffe_ids)("$value: a verified jwt_authn subject is accepted iff valid", (c) => {
    const { host, vm } = startFilter();
    const stream = sendExchange(vm, { properties: jwtMetadata({ sub: c.value }) });
    if (c.valid) {
      expect(stream.response, caseName(c)).toBeUndefined();
      expect(host.pendingHttpCalls().map((call) => call.headers.get("x-hexr-spiffe-id"))).toEqual([c.value]);
    } else {
      expectContractError(stream, 401, "AuthenticationError");
    }
  });

  it.each(VECTORS.spiffe_ids)("$value: the configuration accepts it as the static identity iff valid", (c) => {
    expect(accepts({ identity_sources: ["static"], static_spiffe_id: c.value }), caseName(c)).toBe(c.valid);
  });
});

describe("keys", () => {
  it.each(VECTORS.keys)("$key is where the credential of ($spiffe_id, $service, $region) lives in L1", (c) => {
    const { host, vm } = startFilter({ ...ANY_REGION, extra_services: [c.service] });
    sendExchange(vm, { properties: jwtMetadata({ sub: c.spiffe_id }), body: { service: c.service, region: c.region } });
    const issued = credential({ spiffeId: c.spiffe_id, service: c.service, region: c.region, expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, { spiffeId: c.spiffe_id, source: "jwt", service: c.service, region: c.region }), issued);
    expect(host.sharedData.read(c.key)?.text).toContain(issued.body);
  });

  it.each(VECTORS.keys)("$lock is the cross-pod lock the filter takes for ($spiffe_id, $service, $region)", (c) => {
    const { host, vm } = startFilter({ ...ANY_REGION, extra_services: [c.service], l2: { cluster: BRIDGE_CLUSTER, authority: "hexr-bridge", timeout_ms: 50 } });
    sendExchange(vm, { properties: jwtMetadata({ sub: c.spiffe_id }), body: { service: c.service, region: c.region } });
    host.pendingHttpCalls()[0].respond({ status: 404 });
    const [lock] = host.pendingHttpCalls();
    expect(lock.method).toBe("PUT");
    const lockedKey = decodeURIComponent(lock.path!.split("?")[0].slice("/v1/locks/".length));
    expect(`lock:${lockedKey}`).toBe(c.lock);
  });
});

describe("served regions (contract.json, regions)", () => {
  // The key provider's services are refused at /exchange (llm/ serves them): the LLM filter's tests cover its region.
  const exchanged = Object.entries(REGIONS).filter(([provider]) => provider !== CONTRACT.llm.key_provider);
  it.each(exchanged.flatMap(([provider, regions]) => regions.map((region) => [provider, region])))(
    "%s serves %s: the filter accepts it",
    (provider, region) => {
      const service = CATALOG.find((name) => name.startsWith(`${provider}_`))!;
      const { host, vm } = startFilter();
      const stream = sendExchange(vm, { body: { service, region } });
      expect(stream.response).toBeUndefined();
      expect(host.pendingHttpCalls().map((call) => call.headers.get("x-hexr-region"))).toEqual([region]);
    },
  );

  it.each([["aws_s3", "us-central1"], ["gcp_storage", "us-east-1"], ["azure_storage", "eu-west-1"], ["aws_s3", "mars-north-1"]])(
    "%s in %s (a region the provider does not serve) is refused before any tier",
    (service, region) => {
      const { host, vm } = startFilter();
      expectContractError(sendExchange(vm, { body: { service, region } }), 400, "BadRequest");
      expect(host.pendingHttpCalls()).toEqual([]);
    },
  );

  it("a configuration may narrow a provider's regions, and its default must be among them", () => {
    const { host, vm } = startFilter({ regions: { aws: ["us-east-1", "eu-west-1"] } });
    expectContractError(sendExchange(vm, { body: { service: "aws_s3", region: "us-west-2" } }), 400, "BadRequest");
    sendExchange(vm, { body: { service: "aws_s3", region: "eu-west-1" } });
    expect(host.pendingHttpCalls().length).toBe(1);
    expect(accepts({ regions: { aws: ["eu-west-1"] } }), "default us-east-1 outside the list").toBe(false);
    expect(accepts({ regions: { aws: ["eu-west-1"] }, default_regions: { aws: "eu-west-1" } })).toBe(true);
    expect(accepts({ regions: { aws: [] } })).toBe(false);
    expect(accepts({ regions: { oracle: "any" } })).toBe(false);
  });
});
