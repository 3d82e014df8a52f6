// `opa test policy/ hexr.contract:contract/contract.json` as part of npm test: the Rego unit tests
// (the exchange policy and OPA's own access policy, policy/system/), run by the real OPA binary
// with the shared contract loaded where the server loads it.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CONTRACT_DATA_PATH, CONTRACT_FILE } from "../../support/opa.ts";
import { projectRoot, tools } from "../../support/tools.ts";

const run = promisify(execFile);
const policyDir = path.join(projectRoot, "policy");

interface OpaTestResult {
  name: string;
  package: string;
  fail?: boolean;
  error?: unknown;
  skip?: boolean;
}

describe("Rego policies", () => {
  it("pass `opa test policy/ hexr.contract:contract/contract.json`", async () => {
    const { stdout } = await run(tools.opa(), ["test", "--format", "json", policyDir, `${CONTRACT_DATA_PATH}:${CONTRACT_FILE}`]);
    const results = JSON.parse(stdout) as OpaTestResult[];
    const failed = results.filter((result) => result.fail || result.error || result.skip).map((result) => result.name);
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(41);
    // OPA's access policy is tested too, not only loaded.
    expect(results.some((result) => result.package === "data.system.authz_test")).toBe(true);
  });

  it("pass `opa check --strict`", async () => {
    await expect(run(tools.opa(), ["check", "--strict", policyDir])).resolves.toBeDefined();
  });
});
