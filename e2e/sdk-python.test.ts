// The Python SDK (sdk/python, package `hexr`) against the real stack: its pytest suite
// (sdk/python/tests: unit tests that need no stack, and tests that use boto3, google-cloud-*,
// google-genai, azure-storage-blob, azure-cosmos and openai clients built by hexr_tool() against
// the sidecar, moto, fake-gcs-server and Azurite), and the content-crew example
// (examples/python/content_crew): three role processes of one agent, each with its own JWT-SVID.
//
// The stack starts once for the file. pytest gets it through environment variables only:
//   HEXR_SIDECAR_URL                 the sidecar's agent listener
//   HEXR_TEST_JWT_DIR                {name}.jwt: a JWT-SVID (0600) per dev identity (IDENTITIES)
//   HEXR_TEST_MOTO_URL               moto (STS, S3, DynamoDB)
//   HEXR_TEST_GCS_ENDPOINT           fake-gcs-server
//   HEXR_TEST_BLOB_ACCOUNT_URL       Azurite's account URL (HTTPS, OAuth on), with its CA bundle variables
//   HEXR_TEST_TLS_CERT / _KEY        the dev listener certificate, for the loopback Cosmos DB stand-in
//   HEXR_TEST_REQUIRE_STACK=1        a stack test that cannot run fails instead of skipping
// What a failure prints is pytest's output with anything token-shaped removed (the tests compare
// fingerprints, never tokens, so an assertion never prints one in the first place).
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDevIdentity, mintJwtSvid } from "../support/dev-identity.ts";
import { startFakeGcs, type FakeGcsServer } from "../support/fake-gcs.ts";
import { startAzuriteBlob, type AzuriteBlob } from "../support/azurite.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { startStack, type Stack } from "../stack/index.ts";
import { SecretLedger, expectNoSecretsInLogs } from "./helpers.ts";

const run = promisify(execFile);

/** The dev identities the pytest suite uses (sdk/python/tests/stack_helpers.py IDS), and the crew's. */
const IDENTITIES: Record<string, string> = {
  researcher: "spiffe://hexr.local/agent/acme-corp/research-analyst/main",
  analyst: "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main",
  probe: "spiffe://hexr.local/agent/acme-corp/sdk-probe/main",
  readonly: "spiffe://hexr.local/agent/acme-corp/read-only-agent/main",
  stranger: "spiffe://hexr.local/agent/acme-corp/no-such-agent/main",
};
const CREW_ROLES = ["researcher", "writer", "editor"] as const;
const crewId = (role: string) => `spiffe://hexr.local/agent/acme-corp/content-crew/${role}`;

let stack: Stack;
let gcs: FakeGcsServer;
let azurite: AzuriteBlob;
let scratch: string;
let jwtDir: string;
const ledger = new SecretLedger();
const outputs: Record<string, string> = {};

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "hexr-e2e-sdk-python-"));
  jwtDir = path.join(scratch, "jwt");
  const [started, fake, blob] = await Promise.all([startStack(), startFakeGcs(), startAzuriteBlob(), ensureDevIdentity()]);
  [stack, gcs, azurite] = [started, fake, blob];
  mkdirSync(jwtDir, { mode: 0o700 });
  const all = { ...IDENTITIES, ...Object.fromEntries(CREW_ROLES.map((role) => [`crew-${role}`, crewId(role)])) };
  for (const [name, spiffeId] of Object.entries(all)) {
    writeFileSync(path.join(jwtDir, `${name}.jwt`), ledger.token(await mintJwtSvid(spiffeId)), { mode: 0o600 });
  }
});

afterAll(async () => {
  if (stack) await expectNoSecretsInLogs(stack, ledger, outputs);
  await Promise.allSettled([stack?.stop(), gcs?.stop(), azurite?.stop()]);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** A clean environment: PATH, an empty HOME (no ~/.aws, no gcloud or azure login), and `env`. */
function cleanEnv(env: Record<string, string>): Record<string, string> {
  const home = mkdtempSync(path.join(scratch, "home-"));
  return { PATH: process.env.PATH ?? "", HOME: home, AWS_EC2_METADATA_DISABLED: "true", ...env };
}

/** Removes anything token- or key-shaped before output is printed. */
function redacted(text: string): string {
  return text
    .replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g, "[redacted]")
    .replace(/\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b/g, "[redacted]")
    .replace(/[A-Za-z0-9+/=_-]{40,}/g, "[redacted]");
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function python(name: string, args: string[], env: Record<string, string>, timeout: number): Promise<Ran> {
  let ran: Ran;
  try {
    const { stdout, stderr } = await run(tools.python(), args, { cwd: projectRoot, env: cleanEnv(env), timeout, maxBuffer: 16 * 1024 * 1024 });
    ran = { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    ran = { code: typeof failed.code === "number" ? failed.code : -1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
  outputs[`${name} stdout`] = ran.stdout;
  outputs[`${name} stderr`] = ran.stderr;
  return ran;
}

describe("the Python SDK", () => {
  it("passes its pytest suite against the stack, fake-gcs-server and Azurite", async () => {
    const ran = await python(
      "pytest",
      ["-m", "pytest", "sdk/python/tests", "-q", "-p", "no:cacheprovider", "--tb=short", "-rfEs"],
      {
        HEXR_SIDECAR_URL: stack.envoy.agentUrl,
        HEXR_TEST_JWT_DIR: jwtDir,
        HEXR_TEST_MOTO_URL: `http://127.0.0.1:${stack.ports.moto}`,
        HEXR_TEST_GCS_ENDPOINT: gcs.url,
        HEXR_TEST_BLOB_ACCOUNT_URL: azurite.accountUrl,
        HEXR_TEST_TLS_CERT: stack.identity.listenerCert,
        HEXR_TEST_TLS_KEY: stack.identity.listenerKey,
        HEXR_TEST_REQUIRE_STACK: "1",
        PYTHONDONTWRITEBYTECODE: "1",
        ...azurite.clientTrustEnv(),
      },
      75_000,
    );
    const shown = redacted(`${ran.stdout}\n${ran.stderr}`).slice(-12_000);
    expect(ran.code, shown).toBe(0);
    // Every test ran: nothing skipped (the stack tests included) and nothing failed.
    const summary = ran.stdout.trim().split("\n").at(-1) ?? "";
    expect(summary, shown).toMatch(/^\d+ passed/);
    expect(summary, shown).not.toMatch(/skipped|failed|error/);
  }, 90_000);

  it("runs the content crew: three role processes, each with its own identity and only its own grants", async () => {
    const contextDir = path.join(scratch, "hexr-context");
    const runs = await Promise.all(
      CREW_ROLES.map((role) =>
        python(`crew ${role}`, [path.join("examples", "python", "content_crew", "crew.py")], {
          HEXR_SIDECAR_URL: stack.envoy.agentUrl,
          HEXR_JWT_SVID_FILE: path.join(jwtDir, `crew-${role}.jwt`),
          HEXR_PROCESS_ROLE: role,
          HEXR_CONTEXT_DIR: contextDir,
          CREW_S3_ENDPOINT: `http://127.0.0.1:${stack.ports.moto}`,
          CREW_BUCKET: "hexr-content-crew-e2e",
          GOOGLE_CLOUD_PROJECT: "hexr-dev",
        }, 60_000),
      ),
    );
    const reports = Object.fromEntries(
      runs.map((ran, i) => {
        expect(ran.code, redacted(ran.stderr).slice(-4000)).toBe(0);
        return [CREW_ROLES[i], JSON.parse(ran.stdout.trim().split("\n").at(-1)!)];
      }),
    );
    const denied = { granted: false, type: "CredentialError", status: 403, message: "the service is not in this agent's resources" };
    // researcher: gcp_bigquery:read only
    expect(reports.researcher.results).toEqual({
      aws_s3: denied,
      gcp_bigquery: { granted: true, spiffe_id: crewId("researcher"), region: "us-central1" },
    });
    expect(reports.researcher.bigquery_project).toBe("hexr-dev");
    // writer: aws_s3 only, and it wrote its draft to moto's S3
    expect(reports.writer.results).toEqual({
      aws_s3: { granted: true, spiffe_id: crewId("writer"), region: "us-east-1" },
      gcp_bigquery: denied,
    });
    expect(reports.writer.wrote).toMatchObject({ bucket: "hexr-content-crew-e2e", listed: true });
    // editor: nothing
    expect(reports.editor.results).toEqual({ aws_s3: denied, gcp_bigquery: denied });

    // Each process wrote its marker file: its own role, its own pid, no secret.
    expect(readdirSync(contextDir).sort()).toEqual(CREW_ROLES.map((role) => `content-crew-${role}.json`).sort());
    const pids = new Set<number>();
    for (const role of CREW_ROLES) {
      const marker = JSON.parse(readFileSync(path.join(contextDir, `content-crew-${role}.json`), "utf8"));
      expect(marker).toMatchObject({ agent_name: "content-crew", process_role: role, tenant: "acme-corp", framework: null, resources: ["aws_s3", "gcp_bigquery"] });
      expect(Object.keys(marker).sort()).toEqual(["agent_name", "framework", "pid", "process_role", "resources", "tenant"]);
      pids.add(marker.pid);
    }
    expect(pids.size).toBe(3);
  }, 60_000);
});
