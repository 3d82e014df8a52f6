// Nobody gets a credential they should not: spoofed x-hexr-* headers, forged or foreign JWTs,
// certificates from outside the trust bundle and key-splitting input all fail, even while the
// identity they aim at has a credential sitting in L1.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { SignJWT, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueX509Svid, mintJwtSvid, DEV_AUDIENCE, DEV_ISSUER } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import {
  SecretLedger,
  cacheCounters,
  delta,
  exchange,
  expectContractError,
  expectCredential,
  expectNoSecretsInLogs,
  request,
  type HttpAnswer,
} from "./helpers.ts";

const run = promisify(execFile);

const VICTIM = DEMO_AGENT_ID; // research-analyst/main; its aws_s3 credential is cached first
const OTHER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"; // aws_s3 granted
const EDITOR = "spiffe://hexr.local/agent/acme-corp/content-crew/editor"; // nothing granted (local allow-list: [])
const READ_ONLY = "spiffe://hexr.local/agent/acme-corp/read-only-agent/main"; // aws_s3:read only
const UNGRANTED_ROLE = "spiffe://hexr.local/agent/acme-corp/research-analyst/helper"; // OPA grants only the "main" role
const GLOBEX = "spiffe://hexr.local/agent/globex/analyst/main"; // another tenant than this pod's sidecar serves
const REGION = "us-west-2";

let stack: Stack;
const ledger = new SecretLedger();
let victimToken: string;
let otherToken: string;
let victimAnswer: HttpAnswer;
let scratch: string;

beforeAll(async () => {
  stack = await startStack();
  scratch = mkdtempSync(path.join(tmpdir(), "hexr-e2e-security-"));
  victimToken = ledger.token(await mintJwtSvid(VICTIM));
  otherToken = ledger.token(await mintJwtSvid(OTHER));
  // The credential every attack below aims at, now in L1 (and L2).
  victimAnswer = await exchange(stack.envoy, { token: victimToken, region: REGION });
  ledger.credentials(expectCredential(victimAnswer, "L3", VICTIM));
});

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function base64url(value: object | string): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** Not one answer may carry the victim's credential. */
function expectNotVictims(answer: HttpAnswer): void {
  const secret = victimAnswer.json.credentials.SecretAccessKey as string;
  expect(answer.text.includes(secret), "the victim's secret").toBe(false);
  expect(answer.json?.spiffe_id === VICTIM).toBe(false);
}

describe("spoofed x-hexr-* headers", () => {
  it("cannot name an identity: without a verified one the answer is the JSON 401", async () => {
    const spoofed: [string, string][] = [
      ["x-hexr-spiffe-id", VICTIM],
      ["x-hexr-tenant", "acme-corp"],
      ["x-hexr-agent", "research-analyst"],
      ["x-hexr-role", "main"],
      ["x-hexr-identity-source", "static"],
      ["x-hexr-service", "aws_s3"],
      ["x-hexr-region", REGION],
      // Neither can a forwarded client certificate on the plain listener.
      ["x-forwarded-client-cert", `By=spiffe://hexr.local/sidecar;URI=${VICTIM}`],
    ];
    const answer = await exchange(stack.envoy, { region: REGION, headers: spoofed });
    expectContractError(answer, 401, "AuthenticationError");
    expectNotVictims(answer);
  });

  it("are removed before the filter and the injector see them: the caller gets its own credential", async () => {
    const answer = await exchange(stack.envoy, {
      token: otherToken,
      region: REGION,
      headers: [
        ["x-hexr-spiffe-id", VICTIM],
        ["X-Hexr-Agent", "research-analyst"],
        ["x-hexr-role", "main"],
        ["x-hexr-cache", "L1"],
      ],
    });
    ledger.credentials(expectCredential(answer, "L3", OTHER));
    expectNotVictims(answer);
  });
});

describe("two tokens in one request", () => {
  it("are refused, whichever jwt_authn verified: the filter never passes on a token it cannot tell was the verified one", async () => {
    for (const tokens of [
      [["authorization", `Bearer ${otherToken}`], ["authorization", `Bearer ${victimToken}`]],
      [["authorization", `Bearer ${victimToken}`], ["authorization", `Bearer ${otherToken}`]],
    ] as [string, string][][]) {
      const answer = await exchange(stack.envoy, { region: REGION, headers: tokens });
      expectContractError(answer, 401, "AuthenticationError");
      expectNotVictims(answer);
    }
  });
});

describe("JWT-SVIDs that must not work", () => {
  async function forgedTokens(): Promise<Record<string, string>> {
    const { keys } = JSON.parse(readFileSync(stack.identity.jwks, "utf8")) as { keys: { kid: string }[] };
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: VICTIM, aud: DEV_AUDIENCE, iss: DEV_ISSUER, iat: now, exp: now + 3600 };
    const { privateKey } = await generateKeyPair("ES256");
    const otherKeySigned = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: keys[0].kid, typ: "JWT" }).sign(privateKey);
    const [, , otherSignature] = otherToken.split(".");
    return {
      "signed with a key outside the trust bundle (same kid)": otherKeySigned,
      "alg none": `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`,
      "another identity's signature under the victim's claims": `${base64url({ alg: "ES256", kid: keys[0].kid, typ: "JWT" })}.${base64url(claims)}.${otherSignature}`,
      "expired": await mintJwtSvid(VICTIM, { issuedAt: now - 7200, ttlSeconds: 600 }),
      "for another audience": await mintJwtSvid(VICTIM, { audience: "someone-else" }),
      "garbage": "not.a.jwt",
    };
  }

  it("each gets the filter's JSON 401, not jwt_authn's plain-text one, though the victim's credential is in L1", async () => {
    const before = await cacheCounters(stack.envoy);
    for (const [what, token] of Object.entries(await forgedTokens())) {
      ledger.token(token);
      const answer = await exchange(stack.envoy, { token, region: REGION });
      try {
        expectContractError(answer, 401, "AuthenticationError");
        expectNotVictims(answer);
      } catch (error) {
        throw new Error(`forged JWT-SVID (${what}): ${(error as Error).message}`);
      }
    }
    // Rejected before any cache lookup.
    expect(delta(before, await cacheCounters(stack.envoy)).hits).toEqual({ L1: 0, L2: 0, L3: 0 });
  });

  it("a valid JWT-SVID of another identity gets that identity's own credential, whatever the body claims", async () => {
    const answer = await exchange(stack.envoy, {
      token: otherToken,
      body: JSON.stringify({ service: "aws_s3", region: REGION, spiffe_id: VICTIM, tenant: "acme-corp", agent: "research-analyst" }),
    });
    const body = expectCredential(answer, "L1", OTHER); // cached by the spoofing test above
    expect(body.credentials.AccessKeyId === victimAnswer.json.credentials.AccessKeyId, "the victim's access key id").toBe(false);
    expectNotVictims(answer);
  });
});

describe("the mTLS listener", () => {
  it("takes the identity from the client certificate; a JWT of someone else cannot ride along", async () => {
    const svid = await issueX509Svid(OTHER);
    // OTHER's certificate with the VICTIM's token, for a key nobody has cached yet: the injector
    // sees the filter's x-hexr-spiffe-id (OTHER, from the certificate) and a JWT for VICTIM.
    const answer = await exchange(stack.envoy, {
      listener: "mtls",
      tls: { ...svid, ca: stack.identity.ca },
      token: victimToken,
      region: "sa-east-1",
    });
    expectContractError(answer, 401, "AuthenticationError");
    expectNotVictims(answer);
  });

  it("refuses a certificate from outside the trust bundle, and a client without one", async () => {
    const cert = path.join(scratch, "rogue.pem");
    const key = path.join(scratch, "rogue-key.pem");
    await run("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-subj", "/CN=rogue", "-addext", `subjectAltName=URI:${VICTIM}`, "-keyout", key, "-out", cert,
    ]);
    const url = `${stack.envoy.agentMtlsUrl}/exchange`;
    const body = JSON.stringify({ service: "aws_s3", region: REGION });
    const headers: [string, string][] = [["content-type", "application/json"]];
    const handshakeFailure = /socket hang up|ECONNRESET|alert|certificate/i;
    await expect(request(url, { method: "POST", headers, body, tls: { cert, key, ca: stack.identity.ca } })).rejects.toThrow(handshakeFailure);
    await expect(request(url, { method: "POST", headers, body, tls: { ca: stack.identity.ca } })).rejects.toThrow(handshakeFailure);
    // The listener itself is up: the agent's own SVID is served.
    const svid = await issueX509Svid(OTHER);
    const served = await request(url, { method: "POST", headers, body, tls: { ...svid, ca: stack.identity.ca } });
    expect(served.status).toBe(200);
  });
});

describe("input that could split or alias a cache key", () => {
  it("rejects a ':' (or anything outside [a-z0-9-]) in the region and unknown services, before any tier", async () => {
    const before = await cacheCounters(stack.envoy);
    const bodies = [
      { service: "aws_s3", region: `${REGION}:x` },
      { service: "aws_s3", region: `${REGION}:aws_s3:${REGION}` },
      { service: "aws_s3", region: "US-WEST-2" },
      { service: "aws_s3", region: "us-west-2\n" },
      { service: `aws_s3:${REGION}`, region: REGION },
      { service: "aws_s3:read", region: REGION },
      { service: "aws_nonexistent", region: REGION },
    ];
    for (const body of bodies) {
      const answer = await exchange(stack.envoy, { token: otherToken, body: JSON.stringify(body) });
      try {
        expectContractError(answer, 400, "BadRequest");
      } catch (error) {
        throw new Error(`${JSON.stringify(body)}: ${(error as Error).message}`);
      }
    }
    const after = delta(before, await cacheCounters(stack.envoy));
    expect(after.hits).toEqual({ L1: 0, L2: 0, L3: 0 });
    expect(after.misses).toEqual({ L1: 0, L2: 0 });
  });
});

describe("policy", () => {
  it("the local allow-list refuses what the agent has no grant for, without asking the injector", async () => {
    const before = await cacheCounters(stack.envoy);
    const answer = await exchange(stack.envoy, { token: ledger.token(await mintJwtSvid(EDITOR)), region: REGION });
    expectContractError(answer, 403, "CredentialError");
    expect(delta(before, await cacheCounters(stack.envoy)).hits).toEqual({ L1: 0, L2: 0, L3: 0 });
  });

  it("OPA's denial comes back as the injector's 403, and is not cached", async () => {
    const token = ledger.token(await mintJwtSvid(UNGRANTED_ROLE));
    const before = await cacheCounters(stack.envoy);
    for (let attempt = 0; attempt < 2; attempt++) {
      expectContractError(await exchange(stack.envoy, { token, region: REGION }), 403, "CredentialError");
    }
    const after = delta(before, await cacheCounters(stack.envoy));
    expect(after.hits).toEqual({ L1: 0, L2: 0, L3: 0 });
    expect(after.misses.L1).toBe(2); // asked the injector both times: nothing was cached
  });

  it("a pod's sidecar cannot obtain credentials for another tenant's agent", async () => {
    const token = ledger.token(await mintJwtSvid(GLOBEX));
    const answer = await exchange(stack.envoy, { token, region: "eu-west-1" });
    expectContractError(answer, 401, "AuthenticationError");
  });

  it("an agent granted a scoped service (aws_s3:read) passes the local allow-list and gets its credential", async () => {
    const answer = await exchange(stack.envoy, { token: ledger.token(await mintJwtSvid(READ_ONLY)), region: REGION });
    ledger.credentials(expectCredential(answer, "L3", READ_ONLY));
  });
});

describe("malformed requests through the real Envoy", () => {
  const url = () => `${stack.envoy.agentUrl}/exchange`;
  const auth = (): [string, string] => ["authorization", `Bearer ${victimToken}`];
  const json: [string, string] = ["content-type", "application/json"];

  it("get the contract's JSON errors, never a credential", async () => {
    const cases: { what: string; answer: Promise<import("./helpers.ts").HttpAnswer>; status: number; type: string }[] = [
      { what: "GET", answer: request(url(), { headers: [auth()] }), status: 405, type: "BadRequest" },
      { what: "text/plain", answer: request(url(), { method: "POST", headers: [auth(), ["content-type", "text/plain"]], body: '{"service":"aws_s3"}' }), status: 415, type: "BadRequest" },
      { what: "5000-byte body", answer: request(url(), { method: "POST", headers: [auth(), json], body: JSON.stringify({ service: "aws_s3", pad: "x".repeat(5000) }) }), status: 413, type: "BadRequest" },
      { what: "5000-byte chunked body", answer: request(url(), { method: "POST", headers: [auth(), json, ["transfer-encoding", "chunked"]], body: JSON.stringify({ service: "aws_s3", pad: "x".repeat(5000) }) }), status: 413, type: "BadRequest" },
      { what: "not JSON", answer: request(url(), { method: "POST", headers: [auth(), json], body: "service=aws_s3" }), status: 400, type: "BadRequest" },
      { what: "empty body", answer: request(url(), { method: "POST", headers: [auth(), json], body: "" }), status: 400, type: "BadRequest" },
      { what: "no service", answer: request(url(), { method: "POST", headers: [auth(), json], body: '{"region":"us-west-2"}' }), status: 400, type: "BadRequest" },
    ];
    for (const { what, answer, status, type } of cases) {
      try {
        const received = await answer;
        expectContractError(received, status, type);
        if (status === 405) expect(received.headers.allow).toBe("POST");
        expectNotVictims(received);
      } catch (error) {
        throw new Error(`${what}: ${(error as Error).message}`);
      }
    }
  });

  it("are handled by the filter whatever the spelling of the path, and other paths reach nothing", async () => {
    const noToken = async (target: string) => request(target, { method: "POST", headers: [json], body: '{"service":"aws_s3"}' });
    const base = stack.envoy.agentUrl;
    expectContractError(await noToken(`${base}/exchange?service=aws_s3`), 401, "AuthenticationError");
    expectContractError(await noToken(`${base}//exchange`), 401, "AuthenticationError");
    expectContractError(await noToken(`${base}/./exchange`), 401, "AuthenticationError");
    for (const other of ["/Exchange", "/exchange/", "/v1/cred/x", "/"]) {
      const answer = await request(`${base}${other}`, { method: "POST", headers: [auth(), json], body: '{"service":"aws_s3"}' });
      expectContractError(answer, 404, "BadRequest");
      expectNotVictims(answer);
    }
  });
});

describe("logs", () => {
  it("contain no credential or token", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
