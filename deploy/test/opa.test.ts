// The chart's OPA: the policies it ships are the project's own (byte-identical to policy/ and
// contract/), and what OPA loads in the pod, rendered from each values file (the policy ConfigMap,
// the agents' grants as data.json, the contract, the token's hash), passes `opa test` with the
// project's Rego tests (policy/**/*_test.rego) and with tests of the rendered data itself: every
// grant in the values is allowed by the real policy, and the Secret's token is the one OPA accepts.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot, tools } from "../../support/tools.ts";
import { chartDir, configMapEntries, render, requireChart, run, valuesFiles, type Manifest } from "./helpers.ts";

const policyDir = path.join(projectRoot, "policy");
const contractFile = path.join(projectRoot, "contract", "contract.json");

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

const policies = walk(policyDir).filter((file) => file.endsWith(".rego") && !file.endsWith("_test.rego"));
const policyTests = walk(policyDir).filter((file) => file.endsWith("_test.rego"));

/** Rego tests of the rendered data, run by `opa test` beside the project's own. */
const CHART_DATA_TEST = `package hexr.chart_data_test

import data.hexr.exchange
import data.system.authz

# Every grant the values give (tenant, agent, role, "service[:scope]").
grants contains [tenant, agent, role, grant] if {
	some tenant, t in data.hexr.tenants
	some agent, a in t.agents
	some role, list in a.roles
	some grant in list
}

provider(service) := split(service, data.hexr.contract.grammar.service.separator)[0]

# The region an agent would ask for: the contract's default, or the first of the tenant's own
# regions that the contract serves for the provider; a grant with none is reported as denied.
region(tenant, service) := r if {
	not data.hexr.tenants[tenant].regions
	r := data.hexr.contract.default_regions[provider(service)]
} else := r if {
	r := [x | some x in data.hexr.tenants[tenant].regions; x in data.hexr.contract.regions[provider(service)]][0]
} else := "zz-no-region-for-this-grant"

denied contains [tenant, agent, role, grant, d.reasons] if {
	some [tenant, agent, role, grant] in grants
	service := split(grant, ":")[0]
	process := {true: "any-role", false: role}[role == "*"]
	spiffe_id := concat("/", [concat("", ["spiffe://", data.hexr.trust_domains[0]]), "agent", tenant, agent, process])
	d := exchange.decision with input as {
		"spiffe_id": spiffe_id, "tenant": tenant, "agent": agent, "role": process,
		"service": service, "region": region(tenant, service), "revoked_prefixes": [],
	}
	not d.allow
}

test_every_grant_in_the_values_is_allowed if count(denied) == 0

test_an_agent_the_values_do_not_list_is_denied if {
	every tenant, _ in data.hexr.tenants {
		not allowed_unlisted(tenant)
	}
}

allowed_unlisted(tenant) if {
	d := exchange.decision with input as {
		"spiffe_id": concat("", ["spiffe://", data.hexr.trust_domains[0], "/agent/", tenant, "/zz-not-listed/main"]),
		"tenant": tenant, "agent": "zz-not-listed", "role": "main",
		"service": "aws_s3", "region": data.hexr.contract.default_regions.aws, "revoked_prefixes": [],
	}
	d.allow
}

test_the_secrets_token_may_ask_for_decisions if {
	authz.allow with input as {"identity": data.chart_test.token, "method": "POST", "path": ["v1", "data", "hexr", "exchange", "decision"], "params": {}}
	not authz.allow with input as {"identity": "guess", "method": "POST", "path": ["v1", "data", "hexr", "exchange", "decision"], "params": {}}
}
`;

let dir: string;
beforeAll(() => {
  requireChart();
  dir = mkdtempSync(path.join(tmpdir(), "hexr-chart-opa-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the chart's copies of the policies and the contract", () => {
  it("ship every policy/**/*.rego (tests left out), byte-identical", () => {
    requireChart();
    const chartRego = walk(chartDir).filter((file) => file.endsWith(".rego"));
    for (const policy of policies) {
      const relative = path.relative(policyDir, policy);
      const copies = chartRego.filter((file) => file.endsWith(path.sep + relative));
      expect(copies.length, `no copy of policy/${relative} in the chart`).toBeGreaterThan(0);
      for (const copy of copies) expect(readFileSync(copy, "utf8") === readFileSync(policy, "utf8"), `${path.relative(projectRoot, copy)} differs from policy/${relative}`).toBe(true);
    }
    expect(chartRego.filter((file) => file.endsWith("_test.rego")), "tests shipped in the chart").toEqual([]);
    expect(chartRego.length).toBe(policies.length);
  });

  it("ship contract/contract.json byte-identical (OPA's data.hexr.contract)", () => {
    const copies = walk(chartDir).filter((file) => path.basename(file) === "contract.json");
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) expect(readFileSync(copy, "utf8") === readFileSync(contractFile, "utf8"), `${path.relative(projectRoot, copy)} differs from contract/contract.json`).toBe(true);
  });
});

/** What the OPA pod loads, from a rendering: the policies, data.json, the contract, the token. */
function opaInputs(manifests: Manifest[]) {
  const rego: Array<[string, string]> = [];
  let data: string | undefined;
  let contract: string | undefined;
  for (const [, key, value] of configMapEntries(manifests)) {
    if (key.endsWith(".rego")) rego.push([key, value]);
    else if (key === "contract.json") contract = value;
    else if (key.endsWith(".json") && JSON.parse(value)?.hexr?.tenants) data = value;
  }
  const secret = manifests.find((m) => m.kind === "Secret" && /opa/.test(m.metadata.name) && (m.data?.token || m.stringData?.token));
  const token = secret ? (secret.stringData?.token ?? Buffer.from(secret.data.token, "base64").toString("utf8")) : undefined;
  return { rego, data, contract, token };
}

const cases: Array<[string, string | undefined]> = [["chart defaults", undefined], ...valuesFiles().map((file): [string, string] => [path.basename(file), file])];

describe.each(cases)("OPA as rendered with %s", (label, valuesFile) => {
  // A ConfigMap's block scalar may drop the file's final newline; nothing else may differ.
  it("loads the policies identical to policy/ (but for a final newline), the contract, and data.hexr from the values", async () => {
    const { rego, data, contract } = opaInputs((await render(valuesFile)).manifests);
    expect(rego.length, "no ConfigMap with .rego").toBe(policies.length);
    for (const [key, text] of rego) {
      const original = policies.find((file) => readFileSync(file, "utf8").trimEnd() === text.trimEnd());
      expect(original, `${key} is none of policy/**/*.rego`).toBeDefined();
    }
    expect(data, "no ConfigMap entry with data.hexr.tenants").toBeDefined();
    expect(contract?.trimEnd() === readFileSync(contractFile, "utf8").trimEnd(), "the rendered contract.json differs from contract/contract.json").toBe(true);
  });

  it("passes `opa test` with policy/**/*_test.rego and the tests of the rendered data", async () => {
    const { rego, data, contract, token } = opaInputs((await render(valuesFile)).manifests);
    expect(token, "no OPA token Secret rendered (set opa.existingTokenSecret?)").toBeDefined();
    const where = path.join(dir, label.replace(/[^a-z0-9.-]+/gi, "_"));
    mkdirSync(path.join(where, "policy"), { recursive: true });
    for (const [key, text] of rego) writeFileSync(path.join(where, "policy", key), text);
    writeFileSync(path.join(where, "data.json"), data!);
    writeFileSync(path.join(where, "contract.json"), contract!);
    // What the OPA pod's init container writes: the SHA-256 of the token, never the token.
    writeFileSync(path.join(where, "opa-authz.json"), JSON.stringify({ hexr_authz: { token_sha256: createHash("sha256").update(token!).digest("hex") } }));
    // The token only for the test's own input.
    writeFileSync(path.join(where, "chart-test.json"), JSON.stringify({ chart_test: { token } }));
    writeFileSync(path.join(where, "chart_data_test.rego"), CHART_DATA_TEST);
    const args = [
      "test",
      "--format",
      "json",
      path.join(where, "policy"),
      ...policyTests,
      path.join(where, "chart_data_test.rego"),
      path.join(where, "data.json"),
      path.join(where, "opa-authz.json"),
      path.join(where, "chart-test.json"),
      `hexr.contract:${path.join(where, "contract.json")}`,
    ];
    const result = await run(tools.opa(), args, { timeout: 120_000 });
    let results: Array<{ name: string; package: string; fail?: boolean; error?: unknown; skip?: boolean }>;
    try {
      results = JSON.parse(result.stdout);
    } catch {
      throw new Error(`opa test printed no results (exit ${result.code}):\n${result.stderr}${result.stdout}`);
    }
    // exchange_test's test_shipped_data_* check policy/data.json's grants, which the chart replaces
    // with the values' (injector/test/policy.test.ts runs them with it): not applicable here.
    const notApplicable = (r: { package: string; name: string }) => r.package === "data.hexr.exchange_test" && r.name.startsWith("test_shipped_data_");
    const failed = results.filter((r) => (r.fail || r.error || r.skip) && !notApplicable(r)).map((r) => `${r.package}.${r.name}`);
    expect(failed).toEqual([]);
    expect(results.filter((r) => r.package === "data.hexr.chart_data_test").length).toBe(3);
    // The seeds' sample values grant something (the tests above are not vacuous for them).
    if (valuesFile && /seed/.test(path.basename(valuesFile))) expect(Object.keys(JSON.parse(data!).hexr.tenants).length).toBeGreaterThan(0);
    expect(results.length).toBeGreaterThan(40);
  }, 120_000);

  it("passes `opa check --strict` on what it loads", async () => {
    const { rego } = opaInputs((await render(valuesFile)).manifests);
    const where = path.join(dir, `${label}-check`.replace(/[^a-z0-9.-]+/gi, "_"));
    mkdirSync(where, { recursive: true });
    for (const [key, text] of rego) writeFileSync(path.join(where, key), text);
    const result = await run(tools.opa(), ["check", "--strict", where]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });
});
