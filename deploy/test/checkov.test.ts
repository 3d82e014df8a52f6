// checkov, once, on the chart rendered with its defaults and with each deploy/helm/values/*.yaml
// (framework kubernetes) and on every deploy/docker/*.Dockerfile (framework dockerfile). Every
// failed check must be listed in deploy/checkov-skips.yaml with the reason it is not fixed; a skip
// that matches no finding any more fails too, so the list never outlives its reasons.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot, tools } from "../../support/tools.ts";
import { dockerDir, render, requireChart, run, valuesFiles } from "./helpers.ts";

const skipsFile = path.join(projectRoot, "deploy", "checkov-skips.yaml");

interface Skip {
  check: string;
  /** Globs over checkov's resource names (Kind.namespace.name for Kubernetes; `*` matches anything). Default: all. */
  resources?: string[];
  reason: string;
}

interface Finding {
  check: string;
  name: string;
  resource: string;
  file: string;
}

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
}

function matches(skip: Skip, finding: Finding): boolean {
  return skip.check === finding.check && (skip.resources ?? ["*"]).some((pattern) => glob(pattern).test(finding.resource));
}

let dir: string;
let findings: Finding[] = [];
let scanned = { kubernetes: 0, dockerfile: 0 };

beforeAll(async () => {
  requireChart();
  dir = mkdtempSync(path.join(tmpdir(), "hexr-checkov-"));
  const cases = [undefined, ...valuesFiles()];
  for (const valuesFile of cases) {
    const rendering = await render(valuesFile);
    const name = valuesFile ? path.basename(valuesFile, ".yaml") : "defaults";
    mkdirSync(path.join(dir, "chart", name), { recursive: true });
    writeFileSync(path.join(dir, "chart", name, "rendered.yaml"), rendering.yaml);
  }
  mkdirSync(path.join(dir, "docker"), { recursive: true });
  if (existsSync(dockerDir)) {
    for (const file of readdirSync(dockerDir).filter((name) => name.endsWith(".Dockerfile"))) copyFileSync(path.join(dockerDir, file), path.join(dir, "docker", file));
  }
  // One run over both; offline (--skip-download: no policy or guideline download).
  const result = await run(tools.checkov(), ["--directory", dir, "--framework", "kubernetes", "dockerfile", "--output", "json", "--quiet", "--compact", "--skip-download"], {
    timeout: 300_000,
    env: { ...process.env, BC_API_KEY: "", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2: "false", LOG_LEVEL: "ERROR" },
  });
  if (result.code !== 0 && result.code !== 1) throw new Error(`checkov exited ${result.code}:\n${result.stderr}`);
  const reports = [JSON.parse(result.stdout)].flat() as Array<{ check_type: string; results: { failed_checks: any[] }; summary: { resource_count: number } }>;
  for (const report of reports) {
    if (report.check_type === "kubernetes" || report.check_type === "dockerfile") scanned[report.check_type] += report.summary.resource_count;
    for (const failed of report.results?.failed_checks ?? []) {
      findings.push({ check: failed.check_id, name: failed.check_name, resource: failed.resource, file: failed.file_path });
    }
  }
}, 300_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("checkov", () => {
  const skips: Skip[] = existsSync(skipsFile) ? (parse(readFileSync(skipsFile, "utf8"))?.skips ?? []) : [];

  it("scanned the rendered chart and the Dockerfiles", () => {
    expect(scanned.kubernetes).toBeGreaterThan(0);
    expect(scanned.dockerfile).toBe(existsSync(dockerDir) ? readdirSync(dockerDir).filter((name) => name.endsWith(".Dockerfile")).length : 0);
  });

  it("every skip in deploy/checkov-skips.yaml names a check and says why", () => {
    for (const skip of skips) {
      expect(skip.check, JSON.stringify(skip)).toMatch(/^CKV2?_[A-Z0-9]+_\d+$/);
      expect(typeof skip.reason === "string" && skip.reason.trim().length >= 20, `${skip.check}: no reason`).toBe(true);
    }
  });

  it("finds nothing that is not fixed or explained in deploy/checkov-skips.yaml", () => {
    const unexplained = findings
      .filter((finding) => !skips.some((skip) => matches(skip, finding)))
      .map((finding) => `${finding.check} ${finding.resource} (${finding.file}): ${finding.name}`);
    expect([...new Set(unexplained)].sort()).toEqual([]);
  });

  it("keeps no skip that matches no finding", () => {
    const stale = skips.filter((skip) => !findings.some((finding) => matches(skip, finding))).map((skip) => `${skip.check} ${(skip.resources ?? ["*"]).join(",")}`);
    expect(stale).toEqual([]);
  });
});
