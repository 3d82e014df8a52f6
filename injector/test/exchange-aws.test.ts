// The whole AWS path against the real OPA server (policy/) and the real moto STS and S3.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { issueX509Svid } from "../../support/dev-identity.ts";
import {
  ANALYST_ID, DEFAULT_ROLE_ARN, PIPELINE_ID, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const ANALYST_ROLE_ARN = "arn:aws:iam::123456789012:role/research-analyst";

let identity: TestIdentity;
let opa: OpaServer;
let moto: MotoServer;
let injector: CapturedInjector;
let tls: ClientTls;

beforeAll(async () => {
  identity = await testIdentity();
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
  injector = await startCaptured({
    ...baseConfig(identity, opa.url),
    aws: {
      sts_endpoint: moto.url,
      sts_region: "us-east-1",
      role_arns: { "*": DEFAULT_ROLE_ARN, "acme-corp/research-analyst": ANALYST_ROLE_ARN },
      duration_seconds: 1800,
    },
  });
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  await injector?.close();
  await Promise.all([opa?.stop(), moto?.stop()]);
  await identity?.remove();
});

async function exchange(spiffeId: string, body: object, extraHeaders: Record<string, string> = {}, sidecar = tls) {
  const token = await identity.mint(spiffeId);
  const reply = await send(injector.url, { headers: filterHeaders(spiffeId, token, extraHeaders), body: JSON.stringify(body), tls: sidecar });
  return { token, reply };
}

function stsCalls(requests: Awaited<ReturnType<MotoServer["recordedRequests"]>>) {
  return requests
    .map((request) => new URLSearchParams(request.body))
    .filter((form) => form.get("Action") === "AssumeRoleWithWebIdentity");
}

describe("AWS exchange through OPA and moto STS", () => {
  it("issues credentials the policy allows, in the contract's body and header", async () => {
    await moto.startRecording();
    const before = Math.floor(Date.now() / 1000);
    const { token, reply } = await exchange(ANALYST_ID, { service: "aws_s3", region: "eu-west-1" });

    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/json");
    const body = reply.json;
    expect(Object.keys(body)).toEqual(["service", "provider", "region", "spiffe_id", "credentials", "expiration", "expires_at"]);
    expect(body).toMatchObject({ service: "aws_s3", provider: "aws", region: "eu-west-1", spiffe_id: ANALYST_ID });
    expect(Object.keys(body.credentials).sort()).toEqual(["AccessKeyId", "SecretAccessKey", "SessionToken"]);
    expect(body.credentials.AccessKeyId).toMatch(/^ASIA/);
    // duration_seconds 1800 from the config, as moto computes it
    expect(body.expires_at).toBeGreaterThanOrEqual(before + 1800 - 5);
    expect(body.expires_at).toBeLessThanOrEqual(before + 1800 + 5);
    expect(reply.headers["x-hexr-expires-at"]).toBe(String(body.expires_at));
    expect(Date.parse(body.expiration) / 1000).toBe(body.expires_at);
    expect(body.expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const [call] = stsCalls(await moto.recordedRequests());
    expect(call.get("WebIdentityToken")).toBe(token);
    expect(call.get("RoleArn")).toBe(ANALYST_ROLE_ARN); // most specific mapping wins over "*"
    expect(call.get("RoleSessionName")).toBe("hexr.acme-corp.research-analyst.main");
    expect(call.get("DurationSeconds")).toBe("1800");
    expect(call.get("Policy")).toBeNull(); // aws_s3 granted in full
  });

  it("returns credentials that really work: moto knows them as the assumed role, and S3 accepts them", async () => {
    const { reply } = await exchange(ANALYST_ID, { service: "aws_s3" });
    expect(reply.status).toBe(200);
    const { AccessKeyId, SecretAccessKey, SessionToken } = reply.json.credentials;
    const credentials = { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: SessionToken };

    const sts = new STSClient({ region: "us-east-1", endpoint: moto.url, credentials });
    const caller = await sts.send(new GetCallerIdentityCommand({}));
    expect(caller.Arn).toBe("arn:aws:sts::123456789012:assumed-role/research-analyst/hexr.acme-corp.research-analyst.main");

    const s3 = new S3Client({ region: "us-east-1", endpoint: moto.url, forcePathStyle: true, credentials });
    await s3.send(new CreateBucketCommand({ Bucket: "hexr-injector-proof" }));
    await s3.send(new PutObjectCommand({ Bucket: "hexr-injector-proof", Key: "report.csv", Body: "a,b\n1,2\n" }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "hexr-injector-proof" }));
    expect(listed.Contents?.map((object) => object.Key)).toEqual(["report.csv"]);
    sts.destroy();
    s3.destroy();
  });

  it("passes a read-only session policy for a service granted in the :read form", async () => {
    await moto.startRecording();
    // policy/data.json: data-pipeline has "aws_s3:read"
    const { reply } = await exchange(PIPELINE_ID, { service: "aws_s3" });
    expect(reply.status).toBe(200);

    const [call] = stsCalls(await moto.recordedRequests());
    expect(call.get("RoleArn")).toBe(DEFAULT_ROLE_ARN);
    const policy = JSON.parse(call.get("Policy") ?? "null");
    expect(policy.Statement).toEqual([{ Sid: "HexrReadOnly", Effect: "Allow", Action: ["s3:Get*", "s3:List*", "s3:Describe*"], Resource: "*" }]);
  });

  it("denies what the policy does not grant, with 403 and no STS call", async () => {
    await moto.startRecording();
    const { reply } = await exchange(PIPELINE_ID, { service: "aws_ec2" });
    expect(reply.status).toBe(403);
    expect(reply.json).toEqual({
      error: { type: "CredentialError", message: "policy denied: aws_ec2 is not granted to acme-corp/data-pipeline/main" },
    });
    expect(stsCalls(await moto.recordedRequests())).toHaveLength(0);
  });

  it("enforces tenant isolation: grants of one tenant never reach another tenant's agents", async () => {
    const sidecarOf = async (tenant: string) => {
      const svid = await issueX509Svid(`spiffe://hexr.local/sidecar/${tenant}/pod-1`, identity.paths.dir);
      return sidecarTls(identity, svid.cert, svid.key);
    };
    // globex/analyst may use aws_s3 (in its regions); acme-corp has no agent called analyst.
    const [globex, acme, initech] = await Promise.all(
      ["globex", "acme-corp", "initech"].map(async (tenant) => {
        const spiffeId = `spiffe://hexr.local/agent/${tenant}/analyst/main`;
        return exchange(spiffeId, { service: "aws_s3", region: "eu-west-1" }, {}, await sidecarOf(tenant));
      }),
    );
    expect(globex.reply.status).toBe(200);
    expect(acme.reply.json.error.message).toBe("policy denied: aws_s3 is not granted to acme-corp/analyst/main");
    expect(initech.reply.json.error.message).toBe('policy denied: tenant "initech" has no policy');
  });

  it("takes the region from x-hexr-region, then the body, then the provider default", async () => {
    const fromHeader = await exchange(ANALYST_ID, { service: "aws_s3", region: "eu-west-1" }, { "x-hexr-region": "ap-southeast-1" });
    const fromBody = await exchange(ANALYST_ID, { service: "aws_s3", region: "eu-west-1" });
    const byDefault = await exchange(ANALYST_ID, { service: "aws_s3" });
    expect([fromHeader.reply.json.region, fromBody.reply.json.region, byDefault.reply.json.region]).toEqual(["ap-southeast-1", "eu-west-1", "us-east-1"]);
  });

  it("logs one structured line per exchange with no credential or token in it", async () => {
    const linesBefore = injector.logLines().length;
    const { token, reply } = await exchange(ANALYST_ID, { service: "aws_s3", region: "us-west-2" });
    await exchange(PIPELINE_ID, { service: "aws_ec2" });
    const lines = injector.logLines().slice(linesBefore);

    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      msg: "exchange", spiffe_id: ANALYST_ID, service: "aws_s3", provider: "aws", region: "us-west-2",
      decision: "allow", outcome: "issued", status: 200, caller: "spiffe://hexr.local/sidecar/acme-corp/dev-pod",
    });
    expect(typeof lines[0].latency_ms).toBe("number");
    expect(lines[1]).toMatchObject({ spiffe_id: PIPELINE_ID, service: "aws_ec2", decision: "deny", outcome: "denied", status: 403 });

    const text = injector.logText();
    for (const secret of [token, token.split(".")[2], ...Object.values<string>(reply.json.credentials)]) {
      expect(text).not.toContain(secret);
    }
  });
});
