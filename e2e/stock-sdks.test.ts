// Agents with no Hexr code at all: stock SDKs configured only by their standard environment
// variables (stack/sdk-env.ts stockSdkEnvironment) get their credentials from the sidecar's doors
// and use them for real:
//   AWS    container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI + ..._TOKEN_FILE): boto3 and
//          the AWS SDK for JavaScript v3 against moto's S3;
//   GCP    the GCE metadata server (GCE_METADATA_HOST / GCE_METADATA_IP): google-cloud-storage
//          (Python) and google-auth-library (Node) against fake-gcs-server;
//   Azure  App Service managed identity (IDENTITY_ENDPOINT + IDENTITY_HEADER): azure-identity with
//          azure-storage-blob (Python) and @azure/identity with @azure/storage-blob (Node) against
//          Azurite with OAuth on.
// The agents are e2e/agent/*: each runs as its own process with a clean environment (PATH, an empty
// HOME, the door variables, the endpoints, the CA bundle variables) and prints one JSON line with
// fingerprints, never a credential. Every case also reads the sidecar's access log, so it cannot
// pass on a credential from anywhere else.
import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { startFakeGcs, type FakeGcsServer } from "../support/fake-gcs.ts";
import { basicOAuthToken, startAzuriteBlob, type AzuriteBlob } from "../support/azurite.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { DEMO_AGENT_ID, startStack, type EnvoySidecar, type Stack } from "../stack/index.ts";
import { stockSdkEnvironment } from "../stack/sdk-env.ts";
import { SecretLedger, accessLines, eventually, exchange, expectNoSecretsInLogs, request, summary, type AccessLine } from "./helpers.ts";

const run = promisify(execFile);
const AGENTS = path.join(projectRoot, "e2e", "agent");
/** The identity the metadata doors (GCE, Azure) serve by default; policy grants it all three clouds. */
const ANALYST = "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main";
const RESEARCHER = DEMO_AGENT_ID;
const REGION = "us-east-1";
const GCE_TOKEN_PATH = /^\/computeMetadata\/v1\/instance\/service-accounts\/[^/]+\/token$/;

let stack: Stack;
let gcs: FakeGcsServer;
let azurite: AzuriteBlob;
let scratch: string;
const ledger = new SecretLedger();
const agentOutput: Record<string, string> = {};

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "hexr-e2e-stock-sdks-"));
  [stack, gcs, azurite] = await Promise.all([startStack(), startFakeGcs(), startAzuriteBlob()]);
});

afterAll(async () => {
  await Promise.allSettled([stack?.stop(), gcs?.stop(), azurite?.stop()]);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

// ---- running an agent ------------------------------------------------------------------------------

interface AgentRun {
  code: number;
  stderr: string;
  /** The agent's one JSON line. */
  report: any;
}

/**
 * Runs e2e/agent/{script} as its own process: its JWT-SVID for `spiffeId` in a 0600 file (as the
 * Workload API would leave it), and nothing in its environment but what a stock SDK reads.
 */
async function runAgent(name: string, script: string, spiffeId: string, env: Record<string, string> = {}): Promise<AgentRun> {
  const tokenFile = path.join(scratch, `${name}.jwt`);
  writeFileSync(tokenFile, ledger.token(await mintJwtSvid(spiffeId)), { mode: 0o600 });
  const home = mkdtempSync(path.join(scratch, `${name}-home-`));
  const command = script.endsWith(".py") ? tools.python() : process.execPath;
  const result = await run(command, [path.join(AGENTS, script)], {
    env: {
      PATH: process.env.PATH,
      // No ~/.aws, no gcloud configuration or ADC file, no azure CLI login: nothing but the doors.
      HOME: home,
      AWS_REGION: REGION,
      // Should the container door fail, botocore would next try EC2's link-local metadata address.
      AWS_EC2_METADATA_DISABLED: "true",
      ...stockSdkEnvironment(stack.envoy, { tokenFile }),
      AWS_ENDPOINT_URL_S3: stack.parts.moto.url,
      HEXR_TEST_GCS_ENDPOINT: gcs.url,
      HEXR_TEST_BLOB_ACCOUNT_URL: azurite.accountUrl,
      ...azurite.clientTrustEnv(),
      ...env,
    },
    timeout: 60_000,
  }).catch((error: { code?: number; stdout?: string; stderr?: string }) => error);
  const stdout = result.stdout ?? "";
  const stderr = result.stderr ?? "";
  agentOutput[`agent ${name} stdout`] = stdout;
  agentOutput[`agent ${name} stderr`] = stderr;
  const code = "code" in result && typeof result.code === "number" ? result.code : 0;
  const last = stdout.trim().split("\n").at(-1) ?? "";
  let report: unknown;
  try {
    report = JSON.parse(last);
  } catch {
    report = undefined;
  }
  return { code, stderr, report };
}

function expectSucceeded(agent: AgentRun): any {
  expect({ code: agent.code, error: agent.report?.error }, agent.stderr.slice(-2000)).toEqual({ code: 0, error: undefined });
  expect(agent.report.listed).toContain(agent.report.written);
  return agent.report;
}

const fingerprint = (value: string) => createHash("sha256").update(value).digest("hex").slice(0, 16);

// ---- the sidecar's access log ------------------------------------------------------------------------

/**
 * Runs `work` and returns the access log lines Envoy wrote meanwhile: between two marker requests
 * (404s on the agent listener), after a reopen that makes Envoy flush the file (it writes it every
 * 10 s otherwise).
 */
async function whileLogging<T>(sidecar: EnvoySidecar, work: () => Promise<T>): Promise<{ result: T; lines: AccessLine[] }> {
  const marker = `/e2e-marker/${randomUUID()}`;
  await request(`${sidecar.agentUrl}${marker}/start`);
  const result = await work();
  await request(`${sidecar.agentUrl}${marker}/end`);
  await sidecar.admin("/reopen_logs", "POST");
  await eventually("the end marker in the access log", async () => accessLines(sidecar).some((line) => line.path === `${marker}/end`), 15_000);
  const lines = accessLines(sidecar);
  const start = lines.findIndex((line) => line.path === `${marker}/start`);
  const end = lines.findIndex((line) => line.path === `${marker}/end`);
  return { result, lines: lines.slice(start + 1, end) };
}

/** The door's variables, as the agents got them (the token file plays no part in where the doors are). */
function doorEnvironment(): Record<string, string> {
  return stockSdkEnvironment(stack.envoy, { tokenFile: path.join(scratch, "unused.jwt") });
}

const awsDoorPath = () => new URL(doorEnvironment().AWS_CONTAINER_CREDENTIALS_FULL_URI).pathname;
const azureDoorPath = () => new URL(doorEnvironment().IDENTITY_ENDPOINT).pathname;

/** A credential answer of a door: 200 and, as on every credential answer, the identity it served. */
function expectServed(lines: AccessLine[], spiffeId: string): void {
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect({ status: Number(line.status), spiffe_id: line.spiffe_id }).toEqual({ status: 200, spiffe_id: spiffeId });
}

/** The credential the sidecar holds for `spiffeId` and `service`, through POST /exchange (recorded in the ledger). */
async function exchanged(spiffeId: string, service: string): Promise<Record<string, string>> {
  const answer = await exchange(stack.envoy, { token: ledger.token(await mintJwtSvid(spiffeId)), service });
  expect({ status: answer.status, spiffe_id: answer.json?.spiffe_id }, summary(answer)).toEqual({ status: 200, spiffe_id: spiffeId });
  ledger.credentials(answer.json);
  return answer.json.credentials;
}

// ---- AWS -------------------------------------------------------------------------------------------

describe("AWS container credentials", () => {
  let analystKey: string;

  it("boto3 and the AWS SDK for JavaScript list and write S3 objects with the credential the door serves", async () => {
    const { result: [boto3, js], lines } = await whileLogging(stack.envoy, () =>
      Promise.all([
        runAgent("boto3-analyst", "s3_boto3.py", ANALYST, { AGENT_BUCKET: "hexr-stock-boto3" }),
        runAgent("aws-sdk-js-analyst", "s3_aws_sdk.mjs", ANALYST, { AGENT_BUCKET: "hexr-stock-aws-sdk-js" }),
      ]),
    );
    const fromBoto3 = expectSucceeded(boto3);
    const fromJs = expectSucceeded(js);
    // Each SDK says it took the credentials from the container endpoint, not from anywhere else.
    expect(fromBoto3.credential_method).toBe("container-role");
    expect(fromJs.credential_sources).toContain("CREDENTIALS_HTTP");
    expect([fromBoto3.access_key_prefix, fromJs.access_key_prefix]).toEqual(["ASIA", "ASIA"]);
    // One identity, one credential: the two processes share the sidecar's cache entry.
    expect(fromJs.access_key_sha256).toBe(fromBoto3.access_key_sha256);
    analystKey = fromBoto3.access_key_sha256;

    // The door answered both processes, for their verified identity.
    const served = lines.filter((line) => line.path === awsDoorPath());
    expect(served.length).toBeGreaterThanOrEqual(2);
    expectServed(served, ANALYST);
    // And it is the credential the sidecar holds for that identity (aws_s3 in the default region).
    expect(fingerprint((await exchanged(ANALYST, "aws_s3")).AccessKeyId)).toBe(analystKey);

    // The objects really are in moto's S3, seen by another client.
    const s3 = new S3Client({ region: REGION, endpoint: stack.parts.moto.url, forcePathStyle: true, credentials: { accessKeyId: "inspector", secretAccessKey: "inspector" } });
    for (const report of [fromBoto3, fromJs]) {
      const object = await s3.send(new GetObjectCommand({ Bucket: report.bucket, Key: report.written }));
      expect(JSON.parse(await object.Body!.transformToString()).written_by).toMatch(/^(boto3|aws-sdk-js)$/);
    }
    s3.destroy();
  });

  it("gives two processes with different SPIFFE IDs different credentials", async () => {
    const { result: [analyst, researcher], lines } = await whileLogging(stack.envoy, () =>
      Promise.all([
        runAgent("boto3-analyst-2", "s3_boto3.py", ANALYST, { AGENT_BUCKET: "hexr-stock-analyst" }),
        runAgent("boto3-researcher", "s3_boto3.py", RESEARCHER, { AGENT_BUCKET: "hexr-stock-researcher" }),
      ]),
    );
    const a = expectSucceeded(analyst);
    const r = expectSucceeded(researcher);
    expect([a.credential_method, r.credential_method]).toEqual(["container-role", "container-role"]);
    expect(r.access_key_sha256).not.toBe(a.access_key_sha256);
    // A later process of the same identity gets the same credential as the first ones.
    if (analystKey) expect(a.access_key_sha256).toBe(analystKey);

    const served = lines.filter((line) => line.path === awsDoorPath());
    expect(new Set(served.map((line) => line.spiffe_id))).toEqual(new Set([ANALYST, RESEARCHER]));
    for (const line of served) expect(Number(line.status)).toBe(200);
  });

  it("serves 1000 S3 calls from one boto3 client with at most one credential fetch", async () => {
    const { result: agent, lines } = await whileLogging(stack.envoy, () =>
      runAgent("boto3-busy", "s3_boto3.py", RESEARCHER, { AGENT_BUCKET: "hexr-stock-busy", AGENT_S3_CALLS: "1000" }),
    );
    const report = expectSucceeded(agent);
    expect(report).toMatchObject({ credential_method: "container-role", extra_calls: 1000 });
    // botocore re-fetches on every call once the credential has 15 minutes or less left: the
    // door's lifetimes must keep clear of that window.
    const served = lines.filter((line) => line.path === awsDoorPath());
    expect(served.length).toBe(1);
    expectServed(served, RESEARCHER);
  }, 90_000);
});

// ---- GCP -------------------------------------------------------------------------------------------

describe("the GCE metadata server", () => {
  it("google-cloud-storage (Python) and google-auth-library (Node) use its token against Cloud Storage", async () => {
    const { result: [python, node], lines } = await whileLogging(stack.envoy, () =>
      Promise.all([
        runAgent("gcs-python", "gcs_google_cloud_storage.py", ANALYST, { AGENT_BUCKET: "hexr-stock-gcs-python" }),
        runAgent("gcs-node", "gcs_google_auth.mjs", ANALYST, { AGENT_BUCKET: "hexr-stock-gcs-node" }),
      ]),
    );
    const fromPython = expectSucceeded(python);
    const fromNode = expectSucceeded(node);
    // google.auth.default() and GoogleAuth.getClient() chose the metadata server's credentials.
    expect(fromPython.credentials_class).toBe("google.auth.compute_engine.credentials.Credentials");
    expect(fromNode.client_class).toBe("Compute");
    expect(fromPython.project).toEqual(expect.any(String));
    expect(fromNode.project).toBe(fromPython.project);
    // One identity (the metadata listener's), one token, whichever SDK asks.
    expect(fromNode.token_sha256).toBe(fromPython.token_sha256);

    // The door served a token to each process, for the listener's identity.
    const served = lines.filter((line) => GCE_TOKEN_PATH.test(line.path));
    expect(served.length).toBeGreaterThanOrEqual(2);
    expectServed(served, ANALYST);
    expect(fingerprint((await exchanged(ANALYST, served[0].service ?? "gcp_storage")).access_token)).toBe(fromPython.token_sha256);

    // The objects really are in fake-gcs-server.
    for (const report of [fromPython, fromNode]) {
      const listing = await (await fetch(`${gcs.url}/storage/v1/b/${report.bucket}/o`)).json();
      expect(listing.items.map((item: { name: string }) => item.name)).toContain(report.written);
    }
  });
});

// ---- Azure -----------------------------------------------------------------------------------------

describe("Azure managed identity", () => {
  it("azure-identity (Python) and @azure/identity (Node) use its token against Blob Storage (Azurite, OAuth on)", async () => {
    const { result: [python, node], lines } = await whileLogging(stack.envoy, () =>
      Promise.all([
        runAgent("blob-python", "blob_azure_identity.py", ANALYST, { AGENT_CONTAINER: "hexr-stock-blob-python" }),
        runAgent("blob-node", "blob_azure_identity.mjs", ANALYST, { AGENT_CONTAINER: "hexr-stock-blob-node" }),
      ]),
    );
    const fromPython = expectSucceeded(python);
    const fromNode = expectSucceeded(node);
    // Both SDKs chose the App Service protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER).
    expect(fromPython.managed_identity_source).toBe("AppServiceCredential");
    expect(fromNode.managed_identity_source).toBe("AppService");
    expect(fromNode.token_sha256).toBe(fromPython.token_sha256);

    const served = lines.filter((line) => line.path === azureDoorPath());
    expect(served.length).toBeGreaterThanOrEqual(2);
    expectServed(served, ANALYST);
    expect(fingerprint((await exchanged(ANALYST, served[0].service ?? "azure_storage")).access_token)).toBe(fromPython.token_sha256);

    // The blobs really are in Azurite (read with a token of the test's own, see support/azurite.ts).
    for (const report of [fromPython, fromNode]) {
      const listing = await request(`${azurite.accountUrl}/${report.container}?restype=container&comp=list`, {
        headers: [["authorization", `Bearer ${basicOAuthToken()}`], ["x-ms-version", "2025-11-05"]],
        tls: { ca: azurite.caFile },
      });
      expect(listing.status, listing.text).toBe(200);
      expect(listing.text).toContain(`<Name>${report.written}</Name>`);
    }
  });
});

describe("logs", () => {
  it("contain no token or credential, and neither does any agent's output", async () => {
    for (const [name, text] of Object.entries(agentOutput)) {
      expect(/eyJ|AKIA[0-9A-Z]{12}|ASIA[0-9A-Z]{12}/.test(text), `${name} holds credential material`).toBe(false);
    }
    await expectNoSecretsInLogs(stack, ledger, { ...agentOutput, "fake-gcs-server": gcs.output(), azurite: azurite.output() });
  });
});
