// The shared vectors (contract/vectors.json) through the injector's own entry points: its config,
// its request validation, and its authentication of a JWT-SVID over HTTPS with real OPA and moto
// behind it. The filter and the bridge run the same cases; all three must agree with `valid`.
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CATALOG, CONTRACT, DEFAULT_REGIONS, HEADERS, LLM, PROVIDERS, REGIONS, isKeyService, llmKeySecret, llmProvider, llmProviderOfService, type Provider,
} from "../../contract/index.ts";
import { VECTORS, caseName } from "../../contract/vectors.ts";
import { DEFAULT_SIDECAR_SPIFFE_ID } from "../../support/dev-identity.ts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { projectRoot } from "../../support/tools.ts";
import { ServiceCatalog } from "../catalog.ts";
import { ConfigError, parseConfig } from "../config.ts";
import { ExchangeError } from "../errors.ts";
import { parseTarget } from "../request.ts";
import type { InjectorConfigInput } from "../server.ts";
import {
  ANALYST_ID, DEFAULT_ROLE_ARN, baseConfig, filterHeaders, send, sidecarTls, signedByDevKey, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const minimal = { jwt: { jwks_file: "jwks.json" }, trust_domains: ["hexr.local"], opa: { url: "http://127.0.0.1:8181" } };
const VALID_SERVICES = VECTORS.services.filter((c) => c.valid).map((c) => c.value);
const EXTRA_SERVICES = VALID_SERVICES.filter((service) => !CATALOG.includes(service));

/** The parts of a valid agent ID, split here rather than by the parser under test. */
const VALID_AGENTS = VECTORS.spiffe_ids
  .filter((c) => c.valid)
  .map((c) => {
    const [trustDomain, , tenant, agent, role] = c.value.slice("spiffe://".length).split("/");
    return { trustDomain, tenant, agent, role };
  });
const TRUST_DOMAINS = [...new Set(VALID_AGENTS.map((agent) => agent.trustDomain))];

const json = (value: object) => Buffer.from(JSON.stringify(value));

function rejection(call: () => unknown): ExchangeError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(ExchangeError);
    return error as ExchangeError;
  }
  throw new Error("the request was accepted");
}

describe("services", () => {
  for (const c of VECTORS.services) {
    it(caseName(c), () => {
      const configure = () => parseConfig({ ...minimal, extra_services: [c.value] });
      const request = (extraServices: readonly string[]) => () =>
        parseTarget(json({ service: c.value }), { [HEADERS.service]: c.value }, new ServiceCatalog(extraServices), DEFAULT_REGIONS);
      if (c.valid) {
        const config = configure();
        expect(config.extra_services).toEqual([c.value]);
        const provider = c.value.split("_")[0] as Provider;
        expect(request(config.extra_services)()).toEqual({ service: c.value, provider, region: DEFAULT_REGIONS[provider] });
      } else {
        expect(configure).toThrow(new ConfigError("extra_services[0]", `is not valid: ${JSON.stringify(c.value)}`));
        // Not configurable, so unknown even to an injector serving every valid service.
        expect(rejection(request(EXTRA_SERVICES))).toMatchObject({ status: 400, type: "BadRequest", message: `unknown service ${JSON.stringify(c.value)}` });
      }
    });
  }
});

/** Every provider's allow-list lifted, so that these cases test the grammar alone. */
const ANY_REGION = { aws: "any", gcp: "any", azure: "any" } as const;

describe("regions: the grammar (allow-lists lifted)", () => {
  for (const c of VECTORS.regions) {
    it(caseName(c), () => {
      const configure = () => parseConfig({ ...minimal, regions: ANY_REGION, default_regions: { aws: c.value } });
      const { default_regions, regions } = parseConfig({ ...minimal, regions: ANY_REGION });
      const catalog = new ServiceCatalog([]);
      const fromBody = () => parseTarget(json({ service: "aws_s3", region: c.value }), {}, catalog, default_regions, regions);
      const fromHeader = () => parseTarget(json({ service: "aws_s3" }), { [HEADERS.region]: c.value }, catalog, default_regions, regions);
      if (c.valid) {
        expect(configure().default_regions.aws).toBe(c.value);
        expect(fromBody().region).toBe(c.value);
        expect(fromHeader().region).toBe(c.value);
      } else {
        expect(configure).toThrow(new ConfigError("default_regions.aws", "must be a region matching ^[a-z0-9-]{1,32}$"));
        for (const request of [fromBody, fromHeader]) {
          expect(rejection(request)).toMatchObject({ status: 400, type: "BadRequest", message: "region must match ^[a-z0-9-]{1,32}$" });
        }
      }
    });
  }
});

describe("regions: the allow-list per provider", () => {
  const catalog = new ServiceCatalog([]);
  const service: Record<Provider, string> = { aws: "aws_s3", gcp: "gcp_bigquery", azure: "azure_storage", llm: "llm_openai" };
  const ask = (provider: Provider, region: string, config = parseConfig(minimal)) => () =>
    parseTarget(json({ service: service[provider], region }), {}, catalog, config.default_regions, config.regions);

  for (const provider of PROVIDERS) {
    it(`accepts every region the contract serves for ${provider}, and its default`, () => {
      for (const region of REGIONS[provider]) expect(ask(provider, region)().region).toBe(region);
      expect(REGIONS[provider]).toContain(DEFAULT_REGIONS[provider]);
    });

    it(`refuses a region ${provider} does not serve, from the body or the header (400)`, () => {
      const others = PROVIDERS.filter((other) => other !== provider).flatMap((other) => REGIONS[other]).filter((region) => !REGIONS[provider].includes(region));
      for (const region of ["zz-nowhere-9", "a", others[0]]) {
        expect(rejection(ask(provider, region))).toMatchObject({ status: 400, type: "BadRequest", message: `region is not a region served for ${provider}` });
        const fromHeader = () => parseTarget(json({ service: service[provider] }), { [HEADERS.region]: region }, catalog, DEFAULT_REGIONS, REGIONS);
        expect(rejection(fromHeader)).toMatchObject({ status: 400, message: `region is not a region served for ${provider}` });
      }
    });
  }

  it("refuses what a narrower configured list leaves out, and only for that provider", () => {
    const narrow = parseConfig({ ...minimal, regions: { aws: ["eu-west-1"] }, default_regions: { aws: "eu-west-1" } });
    expect(ask("aws", "eu-west-1", narrow)().region).toBe("eu-west-1");
    expect(rejection(ask("aws", "us-east-1", narrow))).toMatchObject({ status: 400, message: "region is not a region served for aws" });
    expect(ask("gcp", "europe-west1", narrow)().region).toBe("europe-west1");
    // The default region comes from the same list.
    const fromDefault = parseTarget(json({ service: "aws_s3" }), {}, catalog, narrow.default_regions, narrow.regions);
    expect(fromDefault.region).toBe("eu-west-1");
  });
});

describe("the LLM section, as contract/index.ts serves it", () => {
  it("names a vault secret for every API-key service of the catalog, and none for azure_openai's Entra token", () => {
    const keyServices = CATALOG.filter(isKeyService);
    expect(keyServices).toEqual(["llm_openai", "llm_anthropic"]);
    expect(keyServices.map(llmKeySecret)).toEqual(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]);
    expect(llmKeySecret("azure_openai")).toBeUndefined();
    expect(llmProviderOfService("azure_openai")?.name).toBe("azure_openai");
    expect(llmKeySecret("aws_s3")).toBeUndefined();
  });

  it("finds providers by their route name and reads every field of the file", () => {
    expect(llmProvider("anthropic")).toEqual({
      name: "anthropic", service: "llm_anthropic", authHeader: "x-api-key", authPrefix: "", keySecret: "ANTHROPIC_API_KEY", endpoints: ["/v1/messages"],
    });
    expect([llmProvider("mistral"), llmProvider("toString")]).toEqual([undefined, undefined]);
    expect(Object.keys(LLM.providers)).toEqual(Object.keys(CONTRACT.llm.providers).filter((key) => !key.startsWith("$")));
    expect([LLM.path, LLM.keyProvider, LLM.keyCredentials]).toEqual(["/v1/llm", "llm", { apiKey: "api_key", models: "models" }]);
    expect([REGIONS.llm, DEFAULT_REGIONS.llm]).toEqual([["global"], "global"]);
  });
});

describe("through the running injector", () => {
  let identity: TestIdentity;
  let policyDir: string;
  let opa: OpaServer;
  let moto: MotoServer;
  let injector: CapturedInjector;
  let tls: ClientTls;

  /** The shipped policy, with data granting every valid vector identity every valid vector service. */
  async function writePolicy(dir: string): Promise<void> {
    const tenants: Record<string, { agents: Record<string, { roles: Record<string, string[]> }> }> = {};
    for (const { tenant, agent, role } of VALID_AGENTS) {
      tenants[tenant] ??= { agents: {} };
      tenants[tenant].agents[agent] ??= { roles: {} };
      tenants[tenant].agents[agent].roles[role] = VALID_SERVICES;
    }
    await copyFile(path.join(projectRoot, "policy", "exchange.rego"), path.join(dir, "exchange.rego"));
    await writeFile(path.join(dir, "data.json"), JSON.stringify({ hexr: { trust_domains: TRUST_DOMAINS, tenants } }));
  }

  /** Every vector identity is relayed by the one dev sidecar, whatever its tenant. */
  const injectorConfig = (extraServices: string[]): InjectorConfigInput => ({
    ...baseConfig(identity, opa),
    trust_domains: TRUST_DOMAINS,
    caller_rules: [{ spiffe_id: DEFAULT_SIDECAR_SPIFFE_ID, tenants: ["*"] }],
    extra_services: extraServices,
    aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
  });

  beforeAll(async () => {
    identity = await testIdentity();
    policyDir = await mkdtemp(path.join(tmpdir(), "hexr-contract-policy-"));
    await writePolicy(policyDir);
    [opa, moto] = await Promise.all([startOpa({ policyDir }), startMoto()]);
    injector = await startCaptured(injectorConfig(EXTRA_SERVICES));
    tls = await sidecarTls(identity);
  });

  afterAll(async () => {
    await injector?.close();
    await Promise.all([opa?.stop(), moto?.stop()]);
    await Promise.all([identity?.remove(), policyDir && rm(policyDir, { recursive: true, force: true })]);
  });

  describe("spiffe_ids: a JWT-SVID with this sub", () => {
    for (const c of VECTORS.spiffe_ids) {
      it(caseName(c), async () => {
        const token = await signedByDevKey(identity, { sub: c.value });
        if (c.valid) {
          const reply = await send(injector.url, { headers: filterHeaders(c.value, token), body: JSON.stringify({ service: "aws_s3" }), tls });
          expect(reply.status).toBe(200);
          expect(reply.json).toMatchObject({ service: "aws_s3", spiffe_id: c.value });
        } else {
          // The filter's header names a valid agent, so only the token's subject is wrong.
          const reply = await send(injector.url, { headers: filterHeaders(ANALYST_ID, token), body: JSON.stringify({ service: "aws_s3" }), tls });
          expect(reply.status).toBe(401);
          expect(reply.json).toEqual({ error: { type: "AuthenticationError", message: "JWT-SVID subject is not an agent SPIFFE ID" } });
        }
      });
    }
  });

  describe("regions over HTTPS", () => {
    const ask = async (url: string, region: string) =>
      send(url, { headers: filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID)), body: JSON.stringify({ service: "aws_s3", region }), tls });

    it("exchanges in a region AWS serves, and refuses one it does not (400) before OPA and STS", async () => {
      const served = await ask(injector.url, "ap-southeast-2");
      expect(served.status).toBe(200);
      expect(served.json).toMatchObject({ region: "ap-southeast-2" });
      const before = injector.logLines().length;
      const refused = await ask(injector.url, "zz-nowhere-9");
      expect(refused.status).toBe(400);
      expect(refused.json).toEqual({ error: { type: "BadRequest", message: "region is not a region served for aws" } });
      expect(injector.logLines().slice(before).find((line) => line.msg === "exchange")).toMatchObject({ decision: "not_reached", outcome: "bad_request" });
    });

    it("is refused by OPA too when only the injector's allow-list is lifted (OPA's comes from the contract)", async () => {
      const lifted = await startCaptured({ ...injectorConfig([]), regions: { aws: "any" } });
      try {
        const reply = await ask(lifted.url, "zz-nowhere-9");
        expect(reply.status).toBe(403);
        expect(reply.json).toEqual({ error: { type: "CredentialError", message: 'policy denied: region "zz-nowhere-9" is not served for aws' } });
        expect((await ask(lifted.url, "eu-west-3")).status).toBe(200);
      } finally {
        await lifted.close();
      }
    });
  });

  it("accepts aws_my-svc end to end: configured as an extra service, requested, exchanged at STS", async () => {
    const own = await startCaptured(injectorConfig(["aws_my-svc"]));
    try {
      expect(own.config.extra_services).toEqual(["aws_my-svc"]);
      const headers = filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID), { [HEADERS.service]: "aws_my-svc" });
      const reply = await send(own.url, { headers, body: JSON.stringify({ service: "aws_my-svc", region: "eu-central-1" }), tls });
      expect(reply.status).toBe(200);
      expect(reply.json).toMatchObject({ service: "aws_my-svc", provider: "aws", region: "eu-central-1", spiffe_id: ANALYST_ID });
      expect(Object.keys(reply.json.credentials).sort()).toEqual(["AccessKeyId", "SecretAccessKey", "SessionToken"]);
      expect(own.logLines().find((line) => line.msg === "exchange")).toMatchObject({ service: "aws_my-svc", outcome: "issued", status: 200 });
    } finally {
      await own.close();
    }
  });
});
