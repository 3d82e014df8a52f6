// The SDK against the real local stack (Envoy with the exchange filter, the injector, OPA, moto,
// the GCP and Entra stand-ins), fake-gcs-server and Azurite: one stack for the whole file.
// Identities are JWT-SVIDs minted by support/dev-identity.ts into files (HEXR_JWT_SVID_FILE's
// source), as the Workload API's helper would leave them.
import { readFileSync, rmSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { PubSub } from "@google-cloud/pubsub";
import { mintJwtSvid } from "../../../support/dev-identity.ts";
import { startFakeGcs, type FakeGcsServer } from "../../../support/fake-gcs.ts";
import { startAzuriteBlob, type AzuriteBlob } from "../../../support/azurite.ts";
import { startStack, type Stack } from "../../../stack/index.ts";
import { HexrClient } from "../src/client.ts";
import { AuthenticationError, CredentialError } from "../src/errors.ts";
import { FileJwtSvidSource } from "../src/identity.ts";
import { awsCredentials, azureCredential, googleAuthClient } from "../src/credentials.ts";
import { execFile } from "node:child_process";
import https from "node:https";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { hexrAgent } from "../src/agent.ts";
import { hexrTool } from "../src/tool.ts";
import { ANALYST, RESEARCHER, tempDir, tokenFile } from "./helpers.ts";
import { startRecorder, type Recorder } from "./recorder.ts";

const PROBE = "spiffe://hexr.local/agent/acme-corp/sdk-probe/main";
let stack: Stack;
let gcs: FakeGcsServer;
let azurite: AzuriteBlob;
const dir = tempDir("stack");
const files: Record<string, string> = {};
const clients: HexrClient[] = [];

/** A client of its own (its own L1) for an identity's token file. */
function clientFor(spiffeId: string): HexrClient {
  const client = new HexrClient({ sidecarUrl: stack.envoy.agentUrl, identity: new FileJwtSvidSource(files[spiffeId]) });
  clients.push(client);
  return client;
}

/** Runs test/agents/{script} with tsx as its own process, with only the given environment (and PATH). */
async function runAgentProcess(script: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = fileURLToPath(new URL(`./agents/${script}`, import.meta.url));
  const tsx = fileURLToPath(new URL("../../../node_modules/tsx/dist/cli.mjs", import.meta.url));
  const result = await promisify(execFile)(process.execPath, [tsx, file], { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 }).catch((e) => e);
  return { code: typeof result.code === "number" ? result.code : 0, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

const bearer = (client: HexrClient, service: string, region?: string) =>
  client.resolve(service, region).then((r) => `Bearer ${(r.answer.credentials as { access_token: string }).access_token}`);

beforeAll(async () => {
  [stack, gcs, azurite] = await Promise.all([startStack(), startFakeGcs(), startAzuriteBlob()]);
  for (const id of [RESEARCHER, ANALYST, PROBE]) files[id] = tokenFile(dir, id.split("/").slice(-2).join("-"), await mintJwtSvid(id));
});
afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.allSettled([stack?.stop(), gcs?.stop(), azurite?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => vi.useRealTimers());

describe("AWS through the sidecar (moto)", () => {
  it("hexrTool('aws_s3') lists and writes objects in moto's S3", async () => {
    const client = clientFor(RESEARCHER);
    const s3 = await hexrTool("aws_s3", { client, endpoint: stack.parts.moto.url, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: "hexr-sdk-ts" }));
    await s3.send(new PutObjectCommand({ Bucket: "hexr-sdk-ts", Key: "report.json", Body: JSON.stringify({ written_by: "@hexr/sdk" }) }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "hexr-sdk-ts" }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(["report.json"]);
    // The credentials are moto's STS session credentials for this identity, from the sidecar.
    const identity = await s3.config.credentials();
    expect(identity.accessKeyId).toMatch(/^ASIA/);
    expect(identity.expiration!.getTime()).toBeGreaterThan(Date.now() + 20 * 60_000);
    expect(client.exchanges).toBe(1);
    s3.destroy();
  });

  it("hexrTool('aws_dynamodb') is a document client that writes and reads native values in moto", async () => {
    const client = clientFor(RESEARCHER);
    const ddb = await hexrTool("aws_dynamodb", { client, endpoint: stack.parts.moto.url });
    const admin = new DynamoDBClient({ region: "us-east-1", endpoint: stack.parts.moto.url, credentials: awsCredentials("aws_dynamodb", { client }) });
    await admin.send(new CreateTableCommand({
      TableName: "notes", BillingMode: "PAY_PER_REQUEST",
      KeySchema: [{ AttributeName: "id", KeyType: "HASH" }], AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
    }));
    await ddb.send(new PutCommand({ TableName: "notes", Item: { id: "n1", tags: ["a", "b"], score: 3 } }));
    const { Item } = await ddb.send(new GetCommand({ TableName: "notes", Key: { id: "n1" } }));
    expect(Item).toEqual({ id: "n1", tags: ["a", "b"], score: 3 });
    expect(client.exchanges).toBe(1); // both clients, one credential
    admin.destroy();
    ddb.destroy();
  });

  it("a client kept across a forced credential expiry re-exchanges by itself and keeps working", async () => {
    const client = clientFor(RESEARCHER);
    const s3 = await hexrTool("aws_s3", { client, endpoint: stack.parts.moto.url, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: "hexr-sdk-ts-expiry" }));
    const first = await s3.config.credentials();
    expect(client.exchanges).toBe(1);
    // The SDK and the AWS SDK read time through Date: 1 s past the AWS SDK's 5-minute refresh
    // window of this credential (and past the SDK's L1 buffer of 10 minutes).
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(first.expiration!.getTime() - 299_000);
    await s3.send(new PutObjectCommand({ Bucket: "hexr-sdk-ts-expiry", Key: "after-expiry", Body: "ok" }));
    // Re-exchanged (the sidecar still holds the same credential in real time, inside the AWS
    // SDK's window, so the AWS SDK may ask more than once): the call after expiry worked.
    expect(client.exchanges).toBeGreaterThanOrEqual(2);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "hexr-sdk-ts-expiry" }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(["after-expiry"]);
    s3.destroy();
  });

  it("the region override reaches the exchange and the client", async () => {
    const client = clientFor(RESEARCHER);
    const s3 = await hexrTool("aws_s3", { client, region: "eu-west-1", endpoint: stack.parts.moto.url, forcePathStyle: true });
    expect(await s3.config.region()).toBe("eu-west-1");
    const resolved = await client.resolve("aws_s3", "eu-west-1");
    expect([resolved.source, resolved.answer.region]).toEqual(["process", "eu-west-1"]);
    await s3.send(new CreateBucketCommand({ Bucket: "hexr-sdk-ts-eu", CreateBucketConfiguration: { LocationConstraint: "eu-west-1" } }));
    s3.destroy();
  });

  it("a denied service rejects with CredentialError: before the sidecar (resources) and from it (403)", async () => {
    const client = clientFor(RESEARCHER);
    const agent = hexrAgent({ name: "research-analyst", tenant: "acme-corp", resources: ["aws_s3", "aws_dynamodb"] }, (service: "gcp_storage") => hexrTool(service, { client }));
    const local = await agent("gcp_storage").catch((e) => e);
    expect(local).toBeInstanceOf(CredentialError);
    expect([local.status, client.exchanges]).toEqual([403, 0]);
    // research-analyst/main is not granted gcp_storage: the sidecar refuses.
    const remote = await hexrTool("gcp_storage", { client }).catch((e) => e);
    expect(remote).toBeInstanceOf(CredentialError);
    expect([remote.status, client.exchanges]).toEqual([403, 1]);
    expect(JSON.stringify(remote) + String(remote)).not.toContain(readFileSync(files[RESEARCHER], "utf8").split(".")[2]);
  });

  it("no identity: AuthenticationError (no token file, an expired one), before any exchange", async () => {
    const none = new HexrClient({ sidecarUrl: stack.envoy.agentUrl, identity: new FileJwtSvidSource(`${dir}/missing.jwt`) });
    await expect(hexrTool("aws_s3", { client: none })).rejects.toBeInstanceOf(AuthenticationError);
    const expired = tokenFile(dir, "expired", await mintJwtSvid(RESEARCHER, { issuedAt: Math.floor(Date.now() / 1000) - 7200 }));
    const old = new HexrClient({ sidecarUrl: stack.envoy.agentUrl, identity: new FileJwtSvidSource(expired) });
    await expect(hexrTool("aws_s3", { client: old })).rejects.toThrow(/has expired/);
    expect(none.exchanges + old.exchanges).toBe(0);
    none.close();
    old.close();
  });
});

describe("GCP and Azure clients through the sidecar", () => {
  it("gcp_storage: Storage writes and lists objects in fake-gcs-server with the sidecar's token", async () => {
    const client = clientFor(ANALYST);
    const storage = await hexrTool("gcp_storage", { client, projectId: "hexr-test", apiEndpoint: gcs.url, useAuthWithCustomEndpoint: true });
    const authClient = await storage.authClient.getClient();
    const headers = vi.spyOn(authClient, "getRequestHeaders");
    const [bucket] = await storage.createBucket(`hexr-sdk-ts-${randomUUID().slice(0, 8)}`);
    await bucket.file("report.json").save(JSON.stringify({ written_by: "@hexr/sdk" }), { resumable: false });
    const [listed] = await bucket.getFiles();
    expect(listed.map((f) => f.name)).toEqual(["report.json"]);
    expect(headers).toHaveBeenCalled();
    const sent = (await headers.mock.results[0].value) as Headers;
    expect(sent.get("authorization")).toBe(await bearer(client, "gcp_storage"));
  });

  it("azure_storage: BlobServiceClient writes and lists blobs in Azurite (OAuth on) with the sidecar's token, in an agent process configured by the environment", async () => {
    const { stdout, code } = await runAgentProcess("blob.ts", {
      HEXR_SIDECAR_URL: stack.envoy.agentUrl,
      HEXR_JWT_SVID_FILE: files[ANALYST],
      HEXR_CONTEXT_DIR: dir,
      AZURE_STORAGE_ACCOUNT_URL: azurite.accountUrl,
      AGENT_CONTAINER: `hexr-sdk-ts-${randomUUID().slice(0, 8)}`,
      NODE_EXTRA_CA_CERTS: azurite.caFile,
    });
    expect({ code, report: JSON.parse(stdout.trim().split("\n").at(-1)!) }).toEqual({ code: 0, report: { listed: ["report.json"] } });
    // Azurite (OAuth on) accepted the bearer token on every call: no 401/403 in its log.
    expect(azurite.output()).toMatch(/PUT .*report\.json/);
  });

  describe("clients whose API has no emulator here: the real library sends the sidecar's token, and gets a new one after expiry", () => {
    let recorder: Recorder;
    beforeAll(async () => {
      recorder = await startRecorder((_method, path) => {
        if (path.includes("/bigquery/v2/projects/")) return { body: { kind: "bigquery#datasetList", datasets: [] } };
        if (path.includes("/chat/completions")) return { body: { id: "c1", object: "chat.completion", created: 1, model: "gpt-4o", choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: "hi" } }] } };
        return { status: 404, body: { code: "NotFound", message: "nothing here" } };
      });
    });
    afterAll(() => recorder.close());

    it("gcp_bigquery: BigQuery", async () => {
      const client = clientFor(ANALYST);
      const bq = await hexrTool("gcp_bigquery", { client, projectId: "hexr-test", apiEndpoint: recorder.url });
      await bq.getDatasets();
      const last = () => recorder.seen.filter((s) => s.path.includes("/bigquery/v2/")).at(-1)!;
      expect(last().authorization).toBe(await bearer(client, "gcp_bigquery"));
      const exchanges = client.exchanges;
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime((await client.resolve("gcp_bigquery")).answer.expires_at * 1000 - 599_000);
      await bq.getDatasets();
      expect(client.exchanges).toBe(exchanges + 1);
      expect(last().authorization).toMatch(/^Bearer .{20,}/);
    });

    it("azure_openai: AzureOpenAI with azureADTokenProvider", async () => {
      const client = clientFor(RESEARCHER);
      const openai = await hexrTool("azure_openai", { client, endpoint: recorder.url, apiVersion: "2024-10-21", deployment: "gpt-4o" });
      const answer = await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] });
      expect(answer.choices[0].message.content).toBe("hi");
      const last = () => recorder.seen.filter((s) => s.path.includes("/chat/completions")).at(-1)!;
      expect(last().authorization).toBe(await bearer(client, "azure_openai"));
      const exchanges = client.exchanges;
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime((await client.resolve("azure_openai")).answer.expires_at * 1000 - 599_000);
      await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "again" }] });
      expect(client.exchanges).toBe(exchanges + 1);
    });

    it("azure_cosmosdb: CosmosClient sends its TokenCredential's token as Cosmos DB's AAD signature; the credential asks the sidecar", async () => {
      // The analyst is not granted azure_cosmosdb (only acme-corp/sdk-probe is): the sidecar refuses, 403.
      const client = clientFor(ANALYST);
      await expect(hexrTool("azure_cosmosdb", { client, endpoint: recorder.url })).rejects.toMatchObject({ name: "CredentialError", status: 403 });
      // The wiring, with a credential the analyst is granted: the real CosmosClient calls the
      // SDK's TokenCredential and signs with its token.
      // Cosmos DB sends a bearer token over HTTPS only: a TLS recorder with the dev CA's listener certificate.
      const tlsRecorder = await startRecorder(() => ({ body: { id: "acct", writableLocations: [], readableLocations: [] } }), { cert: stack.identity.listenerCert, key: stack.identity.listenerKey });
      const { CosmosClient } = await import("@azure/cosmos");
      const agent = new https.Agent({ ca: readFileSync(stack.identity.ca) });
      const cosmos = new CosmosClient({ endpoint: tlsRecorder.url, agent, aadCredentials: azureCredential("azure_storage", { client }), connectionPolicy: { enableEndpointDiscovery: false } });
      await cosmos.getDatabaseAccount().catch(() => undefined);
      const first = tlsRecorder.seen.find((s) => s.path === "/");
      await tlsRecorder.close();
      agent.destroy();
      expect(first, JSON.stringify(tlsRecorder.seen.map((s) => s.path))).toBeDefined();
      const token = (await bearer(client, "azure_storage")).slice("Bearer ".length);
      expect(decodeURIComponent(first!.authorization)).toBe(`type=aad&ver=1.0&sig=${token}`);
      cosmos.dispose();
    });
  });

  it("gcp_vertexai: VertexAI's auth gets its token from the sidecar, again after expiry", async () => {
    const client = clientFor(RESEARCHER);
    const vertex = await hexrTool("gcp_vertexai", { client, project: "hexr-test" });
    const auth = (vertex as unknown as { googleAuth: { getAccessToken(): Promise<string> } }).googleAuth;
    expect(`Bearer ${await auth.getAccessToken()}`).toBe(await bearer(client, "gcp_vertexai"));
    expect(client.exchanges).toBe(1);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime((await client.resolve("gcp_vertexai")).answer.expires_at * 1000 - 599_000);
    expect(await auth.getAccessToken()).toMatch(/.{20,}/);
    expect(client.exchanges).toBe(2);
  });

  // policy/data.json and envoy/exchange-filter.json grant gcp_pubsub and azure_cosmosdb to
  // acme-corp/sdk-probe only: the SDKs' tests use it for the services no other dev identity has.
  it("gcp_pubsub: PubSub's auth client gets its token from the sidecar, and a new exchange after expiry (sdk-probe)", async () => {
    const client = clientFor(PROBE);
    const pubsub = await hexrTool("gcp_pubsub", { client, projectId: "hexr-test" });
    const auth = await pubsub.auth.getClient();
    expect(`Bearer ${(await auth.getAccessToken()).token}`).toBe(await bearer(client, "gcp_pubsub"));
    const headers = await auth.getRequestHeaders();
    expect((headers as Headers).get("authorization")).toBe(await bearer(client, "gcp_pubsub"));
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime((await client.resolve("gcp_pubsub")).answer.expires_at * 1000 - 599_000);
    await auth.getAccessToken();
    expect(client.exchanges).toBe(2);
    await pubsub.close();
  });

  it("azure_cosmosdb: hexrTool's CosmosClient signs with the sidecar's Entra token (sdk-probe)", async () => {
    const client = clientFor(PROBE);
    const tlsRecorder = await startRecorder(() => ({ body: { id: "acct", writableLocations: [], readableLocations: [] } }), { cert: stack.identity.listenerCert, key: stack.identity.listenerKey });
    const agent = new https.Agent({ ca: readFileSync(stack.identity.ca) });
    const cosmos = await hexrTool("azure_cosmosdb", { client, endpoint: tlsRecorder.url, agent, connectionPolicy: { enableEndpointDiscovery: false } });
    await cosmos.getDatabaseAccount().catch(() => undefined);
    const first = tlsRecorder.seen.find((s) => s.path === "/");
    await tlsRecorder.close();
    agent.destroy();
    cosmos.dispose();
    const token = (await bearer(client, "azure_cosmosdb")).slice("Bearer ".length);
    expect(decodeURIComponent(first?.authorization ?? "")).toBe(`type=aad&ver=1.0&sig=${token}`);
  });

  it("gcp_pubsub: PubSub's auth asks the sidecar (an identity not granted gcp_pubsub: the sidecar's 403)", async () => {
    const client = clientFor(ANALYST);
    await expect(hexrTool("gcp_pubsub", { client, projectId: "hexr-test" })).rejects.toMatchObject({ name: "CredentialError", status: 403 });
    const pubsub = new PubSub({ projectId: "hexr-test", authClient: (await googleAuthClient("gcp_pubsub", { client })) as never });
    const auth = await pubsub.auth.getClient();
    await expect(auth.getAccessToken()).rejects.toMatchObject({ name: "CredentialError", status: 403 });
    expect(client.exchanges).toBe(2);
    await pubsub.close();
  });
});
