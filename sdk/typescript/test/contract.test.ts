// The SDK's contract is the project's one contract: src/contract.ts is generated from
// contract/contract.json (stale → this fails), and the SDK's grammars agree with every case of
// contract/vectors.json, as the filter, the injector and the bridge do.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VECTORS, caseName } from "../../../contract/vectors.ts";
import { CATALOG as PROJECT_CATALOG, CONTRACT, DEFAULT_REGIONS as PROJECT_DEFAULTS } from "../../../contract/index.ts";
import { GENERATED_FILE, generateContractSource } from "../scripts/generate-contract.ts";
import { CATALOG, DEFAULT_REGIONS, ERRORS, LLM, VAULT } from "../src/contract.ts";
import { isCatalogService, isRegion, isServiceName, parseAgentSpiffeId } from "../src/grammar.ts";
import { checkRequest } from "../src/client.ts";
import { HexrError } from "../src/errors.ts";

describe("the generated contract", () => {
  it("is what scripts/generate-contract.ts makes from contract/contract.json now", () => {
    expect(readFileSync(GENERATED_FILE, "utf8") === generateContractSource(), "sdk/typescript/src/contract.ts is stale: run npx tsx sdk/typescript/scripts/generate-contract.ts").toBe(true);
  });

  it("has the project's catalog of 13 cloud services and 2 LLM API keys, and its default regions", () => {
    expect([...CATALOG]).toEqual([...PROJECT_CATALOG]);
    expect(CATALOG.filter((service) => !service.startsWith("llm_"))).toHaveLength(13);
    expect(CATALOG.filter((service) => service.startsWith("llm_"))).toEqual(["llm_openai", "llm_anthropic"]);
    expect(DEFAULT_REGIONS).toEqual(PROJECT_DEFAULTS);
    for (const service of CATALOG) expect(isCatalogService(service)).toBe(true);
    expect(isCatalogService("aws_kms")).toBe(false);
  });

  it("carries the vault's paths, name grammar and limits, and the BadRequest 409", () => {
    expect(VAULT).toEqual(JSON.parse(JSON.stringify(CONTRACT.vault, (key, value) => (key.startsWith("$") ? undefined : value))));
    expect([VAULT.secrets_path, VAULT.batch_name, VAULT.max_value_bytes, VAULT.max_batch_names]).toEqual(["/v1/secrets", "_batch", 65536, 64]);
    expect(ERRORS.statuses.BadRequest).toContain(409);
  });

  it("carries the LLM route: its paths, providers and the fields of an llm_* credential", () => {
    expect(LLM).toEqual(JSON.parse(JSON.stringify(CONTRACT.llm, (key, value) => (key.startsWith("$") ? undefined : value))));
    expect(LLM.key_credentials).toEqual({ api_key: "api_key", models: "models" });
    expect(LLM.providers.openai).toMatchObject({ service: "llm_openai", key_secret: "OPENAI_API_KEY" });
  });
});

describe("contract/vectors.json", () => {
  describe("services", () => {
    for (const c of VECTORS.services) it(caseName(c), () => expect(isServiceName(c.value)).toBe(c.valid));
  });
  describe("regions", () => {
    for (const c of VECTORS.regions) it(caseName(c), () => expect(isRegion(c.value)).toBe(c.valid));
  });
  describe("SPIFFE IDs", () => {
    for (const c of VECTORS.spiffe_ids) it(caseName(c), () => expect(parseAgentSpiffeId(c.value) !== undefined).toBe(c.valid));
  });
  it("an invalid service or region is refused before any exchange (BadRequest 400)", () => {
    for (const c of VECTORS.services.filter((v) => !v.valid)) expect(() => checkRequest(c.value)).toThrow(HexrError);
    for (const c of VECTORS.regions.filter((v) => !v.valid)) expect(() => checkRequest("aws_s3", c.value)).toThrow(HexrError);
    expect(checkRequest("aws_s3")).toBe("us-east-1");
    expect(checkRequest("gcp_storage")).toBe("us-central1");
    expect(checkRequest("azure_storage")).toBe("eastus");
    expect(() => checkRequest("aws_s3", "europe-west1")).toThrow(/does not serve/);
  });
});
