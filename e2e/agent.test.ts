// The unchanged agent: a Python process with plain boto3 (e2e/agent/agent.py) asks the sidecar
// for credentials exactly as the Hexr SDK does, builds boto3.client('s3', ...) from the answer
// and lists and writes objects in moto's S3 with them.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { SecretLedger, exchange, expectCredential, expectNoSecretsInLogs } from "./helpers.ts";

const run = promisify(execFile);
const AGENT_SCRIPT = path.join(projectRoot, "e2e", "agent", "agent.py");
const BUCKET = "hexr-e2e-reports";
const REGION = "us-west-2";

let stack: Stack;
let scratch: string;
const ledger = new SecretLedger();
const agentOutput: Record<string, string> = {};

beforeAll(async () => {
  stack = await startStack();
  scratch = mkdtempSync(path.join(tmpdir(), "hexr-e2e-agent-"));
});

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs agent.py as its own process, with the SVID in a file as the Workload API would leave it. */
async function runAgent(name: string, spiffeId: string, env: Record<string, string> = {}) {
  const tokenFile = path.join(scratch, `${name}.jwt`);
  writeFileSync(tokenFile, ledger.token(await mintJwtSvid(spiffeId)), { mode: 0o600 });
  const result = await run(tools.python(), [AGENT_SCRIPT], {
    env: {
      PATH: process.env.PATH,
      HOME: scratch,
      HEXR_SIDECAR_URL: stack.envoy.agentUrl,
      HEXR_JWT_SVID_FILE: tokenFile,
      AGENT_BUCKET: BUCKET,
      // The standard boto3 setting that points S3 at moto; the agent's code knows nothing of it.
      AWS_ENDPOINT_URL_S3: stack.parts.moto.url,
      // No ambient AWS credentials, profiles or metadata service: only the sidecar's.
      AWS_CONFIG_FILE: "/dev/null",
      AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
      AWS_EC2_METADATA_DISABLED: "true",
      ...env,
    },
    timeout: 60_000,
  }).catch((error: { code?: number; stdout?: string; stderr?: string }) => error);
  agentOutput[`agent ${name} stdout`] = result.stdout ?? "";
  agentOutput[`agent ${name} stderr`] = result.stderr ?? "";
  return { code: "code" in result && typeof result.code === "number" ? result.code : 0, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

describe("an unchanged boto3 agent", () => {
  it("exchanges its identity through the sidecar and reads and writes S3 with the credentials", async () => {
    const { code, stdout, stderr } = await runAgent("analyst", DEMO_AGENT_ID, { HEXR_REGION: REGION });
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout.trim());
    expect(report).toMatchObject({ spiffe_id: DEMO_AGENT_ID, region: REGION, bucket: BUCKET, cache_tiers: ["L3", "L1"] });
    expect(report.buckets).toContain(BUCKET);
    expect(report.listed).toContain(report.written);
    expect(JSON.parse(report.read_back)).toEqual({ written_by: DEMO_AGENT_ID });

    // The object really is in moto's S3, seen by another client.
    const s3 = new S3Client({
      region: REGION,
      endpoint: stack.parts.moto.url,
      forcePathStyle: true,
      credentials: { accessKeyId: "inspector", secretAccessKey: "inspector" },
    });
    const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: report.written }));
    expect(JSON.parse(await object.Body!.transformToString())).toEqual({ written_by: DEMO_AGENT_ID });
    s3.destroy();

    // The credential the agent used is the one the sidecar holds for it (now an L1 hit here too).
    const token = ledger.token(await mintJwtSvid(DEMO_AGENT_ID));
    ledger.credentials(expectCredential(await exchange(stack.envoy, { token, region: REGION }), "L1", DEMO_AGENT_ID));
  });

  it("gets the SDK's CredentialError when policy denies it", async () => {
    const { code, stdout } = await runAgent("editor", "spiffe://hexr.local/agent/acme-corp/content-crew/editor");
    expect(code).toBe(4);
    expect(JSON.parse(stdout.trim()).error.type).toBe("CredentialError");
  });

  it("prints no credential and leaves none in any log", async () => {
    await expectNoSecretsInLogs(stack, ledger, agentOutput);
  });
});
