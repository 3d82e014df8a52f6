// GCP Workload Identity Federation against the real OPA server and a loopback stand-in for Google's
// STS and IAM Credentials endpoints (see support/fakes/gcp.ts: no local emulator exists), which verifies
// the subject token against the injector's published JWKS as a workload identity pool does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { freePort } from "../../support/processes.ts";
import { decodeJwt } from "jose";
import { GCP_AUDIENCE, startGcpFake, type GcpFake } from "../../support/fakes/gcp.ts";
import { resolverFor } from "../../support/fakes/oidc-federation.ts";
import {
  ANALYST_ID, MULTI_CLOUD_ID, OIDC_ISSUER, PIPELINE_ID, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity,
  verifyAgainstPublishedJwks, type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const RESEARCHER_ID = "spiffe://hexr.local/agent/acme-corp/content-crew/researcher";
const PIPELINE_SA = "pipeline@hexr-dev.iam.gserviceaccount.com";
const RESEARCHER_SA = "researcher@hexr-dev.iam.gserviceaccount.com";

let identity: TestIdentity;
let opa: OpaServer;
let google: GcpFake;
let injector: CapturedInjector;
let tls: ClientTls;
/** The injector whose discovery listener the fake fetches the issuer's keys from. */
let issuerHost: CapturedInjector;

function gcpConfig(overrides: Record<string, unknown> = {}) {
  return {
    sts_endpoint: `${google.url}/v1/token`,
    iam_credentials_endpoint: google.url,
    workload_identity_provider: GCP_AUDIENCE.replace("//iam.googleapis.com/", ""),
    service_accounts: {
      "acme-corp/data-pipeline": PIPELINE_SA,
      "acme-corp/content-crew/researcher": RESEARCHER_SA,
      "acme-corp/multi-cloud-analyst": "someone-else@hexr-dev.iam.gserviceaccount.com",
    },
    timeout_ms: 1000,
    ...overrides,
  };
}

beforeAll(async () => {
  identity = await testIdentity();
  opa = await startOpa();
  google = await startGcpFake({
    provider: { issuer: OIDC_ISSUER, resolve: resolverFor(OIDC_ISSUER, () => issuerHost.discoveryUrl!) },
    serviceAccounts: [PIPELINE_SA, RESEARCHER_SA],
  });
  injector = issuerHost = await startCaptured({ ...baseConfig(identity, opa), gcp: gcpConfig() });
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  await injector?.close();
  await google?.close();
  await opa?.stop();
  await identity?.remove();
});

async function exchange(spiffeId: string, service: string, url = injector.url) {
  const token = await identity.mint(spiffeId);
  google.calls.length = 0;
  const reply = await send(url, { headers: filterHeaders(spiffeId, token), body: JSON.stringify({ service }), tls });
  return { token, reply };
}

/** What a caller gets from Google STS when it presents `subjectToken` itself. */
async function exchangeAtGoogle(subjectToken: string) {
  const response = await fetch(`${google.url}/v1/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience: GCP_AUDIENCE,
      scope: "https://www.googleapis.com/auth/cloud-platform",
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      subject_token: subjectToken,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    }),
  });
  return { status: response.status, body: await response.json() };
}

const form = (index: number) => new URLSearchParams(google.calls[index].body);

describe("GCP exchange", () => {
  it("exchanges a token it minted for GCP at STS, then impersonates the configured service account", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { token: jwtSvid, reply } = await exchange(PIPELINE_ID, "gcp_bigquery");

    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ service: "gcp_bigquery", provider: "gcp", region: "us-central1", spiffe_id: PIPELINE_ID });
    expect(reply.json.credentials).toEqual({ access_token: expect.stringMatching(/^ya29\.sa-/), token_type: "Bearer" });
    expect(reply.json.expires_at).toBeGreaterThanOrEqual(before + 3600 - 5);
    expect(reply.json.expires_at).toBeLessThanOrEqual(before + 3600 + 5);
    expect(reply.headers["x-hexr-expires-at"]).toBe(String(reply.json.expires_at));

    expect(google.calls.map((call) => call.path)).toEqual(["/v1/token", `/v1/projects/-/serviceAccounts/${PIPELINE_SA}:generateAccessToken`]);
    const subjectToken = form(0).get("subject_token")!;
    expect(Object.fromEntries(form(0))).toEqual({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience: GCP_AUDIENCE,
      scope: "https://www.googleapis.com/auth/cloud-platform",
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      subject_token: subjectToken,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    });
    // Not the agent's token: the injector's, for the workload identity pool provider's audience.
    expect(subjectToken).not.toBe(jwtSvid);
    const claims = await verifyAgainstPublishedJwks(subjectToken, injector.discoveryUrl!, GCP_AUDIENCE);
    expect(claims).toMatchObject({ iss: OIDC_ISSUER, sub: PIPELINE_ID, aud: GCP_AUDIENCE });
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(JSON.parse(google.calls[1].body)).toEqual({ scope: ["https://www.googleapis.com/auth/cloud-platform"], lifetime: "3600s" });
  });

  it("returns the federated token itself when no service account is configured for the identity", async () => {
    // research-analyst is granted gcp_vertexai; no service account is mapped to it
    const { reply } = await exchange(ANALYST_ID, "gcp_vertexai");
    expect(reply.status).toBe(200);
    expect(reply.json.credentials.access_token).toMatch(/^ya29\.federated-/);
    expect(google.calls).toHaveLength(1);
  });

  it("asks for the read-only scope when the policy grants the :read form", async () => {
    const { reply } = await exchange(RESEARCHER_ID, "gcp_bigquery"); // content-crew/researcher: gcp_bigquery:read
    expect(reply.status).toBe(200);
    // STS must hand out cloud-platform for impersonation; the service account token is read-only
    expect(form(0).get("scope")).toBe("https://www.googleapis.com/auth/cloud-platform");
    expect(JSON.parse(google.calls[1].body).scope).toEqual(["https://www.googleapis.com/auth/cloud-platform.read-only"]);
  });

  it("answers 502 with Google's error code when STS rejects the token (an audience the provider does not allow)", async () => {
    const misconfigured = await startCaptured({ ...baseConfig(identity, opa), gcp: gcpConfig({ token_audience: "https://example.com/not-the-provider" }) });
    try {
      const { reply } = await exchange(PIPELINE_ID, "gcp_bigquery", misconfigured.url);
      expect(reply.status).toBe(502);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "GCP STS rejected the exchange: invalid_grant" } });
      expect(decodeJwt(form(0).get("subject_token")!).aud).toBe("https://example.com/not-the-provider");
    } finally {
      await misconfigured.close();
    }
  });

  it("refuses the agent's own JWT-SVID presented to STS directly, whatever its audience", async () => {
    for (const audience of [undefined, GCP_AUDIENCE]) {
      const { status, body } = await exchangeAtGoogle(await identity.mint(PIPELINE_ID, { audience }));
      expect(status).toBe(400);
      expect(body).toEqual({ error: "invalid_grant", error_description: "The issuer in ID Token does not match the expected issuer of the provider." });
    }
  });

  it("answers 502 with the status when impersonation is refused", async () => {
    const { reply } = await exchange(MULTI_CLOUD_ID, "gcp_bigquery");
    expect(reply.status).toBe(502);
    expect(reply.json.error.message).toBe("GCP STS rejected the exchange: PERMISSION_DENIED");
  });

  it("answers 504 within the timeout when Google is slow", async () => {
    google.delayMs = 3000;
    try {
      const started = Date.now();
      const { reply } = await exchange(PIPELINE_ID, "gcp_bigquery");
      expect(reply.status).toBe(504);
      expect(reply.json.error.message).toBe("GCP STS did not answer within 1000 ms");
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      google.delayMs = 0;
    }
  });

  it("answers 503 when Google is unreachable", async () => {
    const closedPort = await freePort();
    const unreachable = await startCaptured({
      ...baseConfig(identity, opa),
      gcp: { sts_endpoint: `http://127.0.0.1:${closedPort}/v1/token`, workload_identity_provider: GCP_AUDIENCE, timeout_ms: 3000 },
    });
    try {
      const token = await identity.mint(PIPELINE_ID);
      const reply = await send(unreachable.url, { headers: filterHeaders(PIPELINE_ID, token), body: '{"service":"gcp_bigquery"}', tls });
      expect(reply.status).toBe(503);
      expect(reply.json.error.message).toBe("GCP STS is unreachable");
    } finally {
      await unreachable.close();
    }
  });

  it("keeps tokens out of the logs", async () => {
    const { token, reply } = await exchange(PIPELINE_ID, "gcp_bigquery");
    for (const secret of [token, form(0).get("subject_token")!, reply.json.credentials.access_token]) {
      expect(injector.logText()).not.toContain(secret);
    }
  });
});
