// `opa test policy/` as part of npm test: the Rego unit tests, run by the real OPA binary.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { projectRoot, tools } from "../../support/tools.ts";

const run = promisify(execFile);
const policyDir = path.join(projectRoot, "policy");

interface OpaTestResult {
  name: string;
  fail?: boolean;
  error?: unknown;
  skip?: boolean;
}

describe("Rego policies", () => {
  it("pass `opa test policy/`", async () => {
    const { stdout } = await run(tools.opa(), ["test", "--format", "json", policyDir]);
    const results = JSON.parse(stdout) as OpaTestResult[];
    const failed = results.filter((result) => result.fail || result.error || result.skip).map((result) => result.name);
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(20);
  });

  it("pass `opa check --strict`", async () => {
    await expect(run(tools.opa(), ["check", "--strict", policyDir])).resolves.toBeDefined();
  });
});
