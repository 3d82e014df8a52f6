// The whole AWS path against the real OPA server (policy/) and the real moto STS and S3, with a
// loopback stand-in for STS's web-identity check in front of moto (support/fakes/aws-sts.ts: moto does not
// verify the token): it verifies what the injector sends against the injector's published JWKS,
// as IAM does for an OIDC identity provider, and applies each role's trust policy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { AssumeRoleWithWebIdentityCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { issueX509Svid } from "../../support/dev-identity.ts";
import { startAwsStsFront, type AwsStsFront } from "../../support/fakes/aws-sts.ts";
import { resolverFor } from "../../support/fakes/oidc-federation.ts";
import {
  ANALYST_ID, OIDC_ISSUER, PIPELINE_ID, baseConfig, filterHeaders, publishedJwks, send, sidecarTls, startCaptured, testIdentity,
  verifyAgainstPublishedJwks, type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const role = (name: string) => `arn:aws:iam::123456789012:role/${name}`;
const ACME_ROLE = role("hexr-acme-corp-agents");
const GLOBEX_ROLE = role("hexr-globex-agents");
const ANALYST_ROLE = role("research-analyst");
const WRITER_ROLE = role("content-writer");
const WRITER_ID = "spiffe://hexr.local/agent/acme-corp/content-crew/writer";
const GLOBEX_ANALYST_ID = "spiffe://hexr.local/agent/globex/analyst/main";
const AWS_AUDIENCE = "sts.amazonaws.com";

let identity: TestIdentity;
let opa: OpaServer;
let moto: MotoServer;
let sts: AwsStsFront;
let injector: CapturedInjector;
let tls: ClientTls;

/** One role per identity pattern, each trusting only the SPIFFE IDs it is meant for. */
const ROLE_ARNS = {
  "acme-corp": ACME_ROLE,
  "acme-corp/research-analyst": ANALYST_ROLE,
  "acme-corp/content-crew/writer": WRITER_ROLE,
  globex: GLOBEX_ROLE,
};

beforeAll(async () => {
  identity = await testIdentity();
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
  sts = await startAwsStsFront({
    motoUrl: moto.url,
    provider: { issuer: OIDC_ISSUER, resolve: resolverFor(OIDC_ISSUER, () => injector.discoveryUrl!) },
    clientIds: [AWS_AUDIENCE],
    roleTrust: {
      [ACME_ROLE]: ["spiffe://hexr.local/agent/acme-corp/*"],
      [GLOBEX_ROLE]: ["spiffe://hexr.local/agent/globex/*"],
      [ANALYST_ROLE]: ["spiffe://hexr.local/agent/acme-corp/research-analyst/*"],
      [WRITER_ROLE]: [WRITER_ID],
    },
  });
  injector = await startCaptured({
    ...baseConfig(identity, opa),
    aws: { sts_endpoint: sts.url, sts_region: "us-east-1", role_arns: ROLE_ARNS, duration_seconds: 1800 },
  });
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  await injector?.close();
  await sts?.close();
  await Promise.all([opa?.stop(), moto?.stop()]);
  await identity?.remove();
});

async function exchange(spiffeId: string, body: object, extraHeaders: Record<string, string> = {}, sidecar = tls, url = injector.url) {
  const token = await identity.mint(spiffeId);
  sts.webIdentityCalls.length = 0;
  const reply = await send(url, { headers: filterHeaders(spiffeId, token, extraHeaders), body: JSON.stringify(body), tls: sidecar });
  return { token, reply };
}

const sessionPolicy = (call: URLSearchParams) => JSON.parse(call.get("Policy") ?? "null");

describe("AWS exchange through OPA and moto STS", () => {
  it("issues credentials the policy allows, in the contract's body and header", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { reply } = await exchange(ANALYST_ID, { service: "aws_s3", region: "eu-west-1" });

    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/json");
    const body = reply.json;
    expect(Object.keys(body)).toEqual(["service", "provider", "region", "spiffe_id", "credentials", "expiration", "expires_at"]);
    expect(body).toMatchObject({ service: "aws_s3", provider: "aws", region: "eu-west-1", spiffe_id: ANALYST_ID });
    expect(Object.keys(body.credentials).sort()).toEqual(["AccessKeyId", "SecretAccessKey", "SessionToken"]);
    expect(body.credentials.AccessKeyId).toMatch(/^ASIA/);
    // duration_seconds 1800 from the config, as moto computes it (the minted token's 5 minutes do not cap it)
    expect(body.expires_at).toBeGreaterThanOrEqual(before + 1800 - 5);
    expect(body.expires_at).toBeLessThanOrEqual(before + 1800 + 5);
    expect(reply.headers["x-hexr-expires-at"]).toBe(String(body.expires_at));
    expect(Date.parse(body.expiration) / 1000).toBe(body.expires_at);
    expect(body.expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const [call] = sts.webIdentityCalls;
    expect(call.get("RoleArn")).toBe(ANALYST_ROLE); // most specific mapping wins over the tenant's
    expect(call.get("RoleSessionName")).toBe("hexr.acme-corp.research-analyst.main");
    expect(call.get("DurationSeconds")).toBe("1800");
  });

  it("sends STS a token the injector minted, never the agent's: it verifies against the published JWKS with the AWS audience", async () => {
    const { token: jwtSvid, reply } = await exchange(ANALYST_ID, { service: "aws_s3" });
    expect(reply.status).toBe(200);
    const webIdentityToken = sts.webIdentityCalls[0].get("WebIdentityToken")!;

    expect(webIdentityToken).not.toBe(jwtSvid);
    expect(decodeJwt(jwtSvid).iss).toBe("https://oidc.hexr.local"); // the agent's token: SPIRE's issuer, the injector's audience
    const claims = await verifyAgainstPublishedJwks(webIdentityToken, injector.discoveryUrl!, AWS_AUDIENCE);
    expect(claims).toMatchObject({ iss: OIDC_ISSUER, sub: ANALYST_ID, aud: AWS_AUDIENCE });
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(claims.nbf).toBe(claims.iat);
    expect(Math.abs(claims.iat! - Date.now() / 1000)).toBeLessThan(10);
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    const header = decodeProtectedHeader(webIdentityToken);
    expect(header).toEqual({ alg: "RS256", kid: expect.any(String), typ: "JWT" });
    expect((await publishedJwks(injector.discoveryUrl!)).keys.map((key) => key.kid)).toContain(header.kid);
  });

  it("mints a fresh token for every exchange", async () => {
    const first = await exchange(ANALYST_ID, { service: "aws_s3" });
    const firstToken = sts.webIdentityCalls[0].get("WebIdentityToken")!;
    const second = await exchange(ANALYST_ID, { service: "aws_s3" });
    const secondToken = sts.webIdentityCalls[0].get("WebIdentityToken")!;
    expect([first.reply.status, second.reply.status]).toEqual([200, 200]);
    expect(decodeJwt(firstToken).jti).not.toBe(decodeJwt(secondToken).jti);
  });

  it("returns credentials that really work: moto knows them as the assumed role, and S3 accepts them", async () => {
    const { reply } = await exchange(ANALYST_ID, { service: "aws_s3" });
    expect(reply.status).toBe(200);
    const { AccessKeyId, SecretAccessKey, SessionToken } = reply.json.credentials;
    const credentials = { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: SessionToken };

    const callerSts = new STSClient({ region: "us-east-1", endpoint: moto.url, credentials });
    const caller = await callerSts.send(new GetCallerIdentityCommand({}));
    expect(caller.Arn).toBe("arn:aws:sts::123456789012:assumed-role/research-analyst/hexr.acme-corp.research-analyst.main");

    const s3 = new S3Client({ region: "us-east-1", endpoint: moto.url, forcePathStyle: true, credentials });
    await s3.send(new CreateBucketCommand({ Bucket: "hexr-injector-proof" }));
    await s3.send(new PutObjectCommand({ Bucket: "hexr-injector-proof", Key: "report.csv", Body: "a,b\n1,2\n" }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "hexr-injector-proof" }));
    expect(listed.Contents?.map((object) => object.Key)).toEqual(["report.csv"]);
    callerSts.destroy();
    s3.destroy();
  });

  it.each([
    ["aws_s3", "s3:*"],
    ["aws_dynamodb", "dynamodb:*"],
    ["aws_bedrock", "bedrock:*"],
  ])("limits a full grant of %s to that service with a session policy (%s)", async (service, action) => {
    // policy/data.json: research-analyst/main has aws_s3, aws_dynamodb and aws_bedrock in full
    const { reply } = await exchange(ANALYST_ID, { service });
    expect(reply.status).toBe(200);
    expect(sessionPolicy(sts.webIdentityCalls[0])).toEqual({
      Version: "2012-10-17",
      Statement: [{ Sid: "HexrServiceOnly", Effect: "Allow", Action: [action], Resource: "*" }],
    });
  });

  it("passes a read-only session policy for a service granted in the :read form", async () => {
    // policy/data.json: data-pipeline has "aws_s3:read"
    const { reply } = await exchange(PIPELINE_ID, { service: "aws_s3" });
    expect(reply.status).toBe(200);

    const [call] = sts.webIdentityCalls;
    expect(call.get("RoleArn")).toBe(ACME_ROLE);
    expect(sessionPolicy(call).Statement).toEqual([{ Sid: "HexrReadOnly", Effect: "Allow", Action: ["s3:Get*", "s3:List*", "s3:Describe*"], Resource: "*" }]);
  });

  it("chooses the role per identity pattern, and each role's trust policy accepts the minted token's subject", async () => {
    const roleOf = async (spiffeId: string, sidecar = tls) => {
      const { reply } = await exchange(spiffeId, { service: "aws_s3", region: "eu-west-1" }, {}, sidecar);
      expect(reply.status, spiffeId).toBe(200);
      const [call] = sts.webIdentityCalls;
      expect(decodeJwt(call.get("WebIdentityToken")!).sub).toBe(spiffeId);
      return call.get("RoleArn");
    };
    const globexSidecar = await issueX509Svid("spiffe://hexr.local/sidecar/globex/pod-1", identity.paths.dir);
    expect(await roleOf(ANALYST_ID)).toBe(ANALYST_ROLE); // "acme-corp/research-analyst"
    expect(await roleOf(WRITER_ID)).toBe(WRITER_ROLE); // "acme-corp/content-crew/writer"
    expect(await roleOf(PIPELINE_ID)).toBe(ACME_ROLE); // "acme-corp"
    expect(await roleOf(GLOBEX_ANALYST_ID, await sidecarTls(identity, globexSidecar.cert, globexSidecar.key))).toBe(GLOBEX_ROLE); // "globex"
  });

  it("is refused by STS when a mapping hands one tenant's agents another tenant's role", async () => {
    const misconfigured = await startCaptured({ ...baseConfig(identity, opa), aws: { sts_endpoint: sts.url, role_arns: { "*": ACME_ROLE } } });
    try {
      const globexSidecar = await issueX509Svid("spiffe://hexr.local/sidecar/globex/pod-1", identity.paths.dir);
      const { reply } = await exchange(GLOBEX_ANALYST_ID, { service: "aws_s3", region: "eu-west-1" }, {}, await sidecarTls(identity, globexSidecar.cert, globexSidecar.key), misconfigured.url);
      expect(reply.status).toBe(502);
      expect(reply.json.error.message).toBe("AWS STS rejected the exchange: AccessDenied");
    } finally {
      await misconfigured.close();
    }
  });

  it("denies what the policy does not grant, with 403 and no STS call", async () => {
    const { reply } = await exchange(PIPELINE_ID, { service: "aws_ec2" });
    expect(reply.status).toBe(403);
    expect(reply.json).toEqual({
      error: { type: "CredentialError", message: "policy denied: aws_ec2 is not granted to acme-corp/data-pipeline/main" },
    });
    expect(sts.webIdentityCalls).toHaveLength(0);
  });

  it("enforces tenant isolation: grants of one tenant never reach another tenant's agents", async () => {
    const sidecarOf = async (tenant: string) => {
      const svid = await issueX509Svid(`spiffe://hexr.local/sidecar/${tenant}/pod-1`, identity.paths.dir);
      return sidecarTls(identity, svid.cert, svid.key);
    };
    // globex/analyst may use aws_s3 (in its regions); acme-corp has no agent called analyst.
    const results = [];
    for (const tenant of ["globex", "acme-corp", "initech"]) {
      results.push(await exchange(`spiffe://hexr.local/agent/${tenant}/analyst/main`, { service: "aws_s3", region: "eu-west-1" }, {}, await sidecarOf(tenant)));
    }
    const [globex, acme, initech] = results;
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
    const minted = sts.webIdentityCalls[0].get("WebIdentityToken")!;
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
    for (const secret of [token, token.split(".")[2], minted, minted.split(".")[2], ...Object.values<string>(reply.json.credentials)]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe("an agent going to STS itself", () => {
  const assumeDirectly = async (webIdentityToken: string) => {
    const client = new STSClient({ region: "us-east-1", endpoint: sts.url });
    try {
      await client.send(new AssumeRoleWithWebIdentityCommand({ RoleArn: ANALYST_ROLE, RoleSessionName: "attacker", WebIdentityToken: webIdentityToken }));
      return "accepted";
    } catch (error) {
      const failure = error as { Code?: string; name: string; $metadata?: { httpStatusCode?: number } };
      return `${failure.$metadata?.httpStatusCode} ${failure.Code ?? failure.name}`;
    } finally {
      client.destroy();
    }
  };

  it("is refused with its own JWT-SVID: another issuer, whatever audience it asks SPIRE for", async () => {
    // The Workload API hands a workload JWT-SVIDs for any audience it names, sts.amazonaws.com included.
    expect(await assumeDirectly(await identity.mint(ANALYST_ID))).toBe("400 InvalidIdentityToken");
    expect(await assumeDirectly(await identity.mint(ANALYST_ID, { audience: AWS_AUDIENCE }))).toBe("400 InvalidIdentityToken");
  });

  it("is refused with a token it signed itself in the injector's name", async () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const [{ kid }] = (await publishedJwks(injector.discoveryUrl!)).keys as { kid: string }[];
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
      .setIssuer(OIDC_ISSUER).setSubject(ANALYST_ID).setAudience(AWS_AUDIENCE).setIssuedAt(now).setExpirationTime(now + 300)
      .sign(privateKey);
    expect(await assumeDirectly(forged)).toBe("400 InvalidIdentityToken");
  });
});
