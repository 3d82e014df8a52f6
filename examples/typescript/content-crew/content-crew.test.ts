// Runs the content crew's three role processes against the real stack, each with its own
// JWT-SVID file, and checks each role's identity and grants: the writer writes to S3; the
// researcher gets BigQuery and is denied S3 (locally by its resources, and by the sidecar);
// the editor gets nothing.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { mintJwtSvid } from "../../../support/dev-identity.ts";
import { startStack, type Stack } from "../../../stack/index.ts";

const CREW = fileURLToPath(new URL("./crew.ts", import.meta.url));
const TSX = fileURLToPath(new URL("../../../node_modules/tsx/dist/cli.mjs", import.meta.url));
const id = (role: string) => `spiffe://hexr.local/agent/acme-corp/content-crew/${role}`;
let stack: Stack;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "hexr-content-crew-"));
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function runRole(role: string): Promise<any> {
  const tokenFile = path.join(dir, `${role}.jwt`);
  writeFileSync(tokenFile, await mintJwtSvid(id(role)), { mode: 0o600 });
  const result = await promisify(execFile)(process.execPath, [TSX, CREW], {
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      HEXR_PROCESS_ROLE: role,
      HEXR_JWT_SVID_FILE: tokenFile,
      HEXR_SIDECAR_URL: stack.envoy.agentUrl,
      HEXR_CONTEXT_DIR: path.join(dir, "context"),
      AWS_ENDPOINT_URL_S3: stack.parts.moto.url,
      CREW_BUCKET: "content-crew-drafts",
    },
    timeout: 60_000,
  }).catch((e) => e);
  const report = JSON.parse(String(result.stdout).trim().split("\n").at(-1) ?? "null");
  expect(report?.error, String(result.stderr).slice(-2000)).toBeUndefined();
  return report;
}

it("each role runs as its own identity with its own grants", async () => {
  const [researcher, writer, editor] = await Promise.all(["researcher", "writer", "editor"].map(runRole));

  expect(writer).toEqual({
    role: "writer", spiffe_id: id("writer"),
    tools: { gcp_bigquery: "denied 403 (local)", aws_s3: "ok" },
    sidecar: { aws_s3: "ok", gcp_bigquery: "denied 403 (sidecar)" },
  });
  expect(researcher).toEqual({
    role: "researcher", spiffe_id: id("researcher"),
    tools: { gcp_bigquery: "ok", aws_s3: "denied 403 (local)" },
    sidecar: { aws_s3: "denied 403 (sidecar)", gcp_bigquery: "ok" },
  });
  expect(editor).toEqual({
    role: "editor", spiffe_id: id("editor"),
    tools: { gcp_bigquery: "denied 403 (local)", aws_s3: "denied 403 (local)" },
    sidecar: { aws_s3: "denied 403 (sidecar)", gcp_bigquery: "denied 403 (sidecar)" },
  });

  // Each process left its marker: who it is, no secret.
  for (const role of ["researcher", "writer", "editor"]) {
    const marker = JSON.parse(readFileSync(path.join(dir, "context", `content-crew-${role}.json`), "utf8"));
    expect(marker).toMatchObject({ agent_name: "content-crew", process_role: role, tenant: "acme-corp", framework: "custom" });
    expect(JSON.stringify(marker)).not.toMatch(/eyJ|ASIA|token/i);
  }
});
