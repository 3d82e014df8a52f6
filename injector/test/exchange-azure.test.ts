// Azure federated client-assertion flow against the real OPA server and a loopback stand-in for
// Entra ID (see support/fakes/azure.ts: no local emulator exists), which checks the client assertion
// against the injector's published JWKS as a federated identity credential does.
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { freePort } from "../../support/processes.ts";
import { projectRoot } from "../../support/tools.ts";
import type { InjectorConfigInput } from "../server.ts";
import { decodeJwt } from "jose";
import { AZURITE_ACCOUNT, startAzuriteBlob } from "../../support/azurite.ts";
import { AZURE_AUDIENCE, startAzureFake, type AzureFake } from "../../support/fakes/azure.ts";
import { resolverFor } from "../../support/fakes/oidc-federation.ts";
import {
  ANALYST_ID, MULTI_CLOUD_ID, OIDC_ISSUER, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity,
  verifyAgainstPublishedJwks, type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const DEFAULT_CLIENT = "11111111-1111-1111-1111-111111111111";
const RESEARCH_CLIENT = "22222222-2222-2222-2222-222222222222";
const ARCHIVIST_ID = "spiffe://hexr.local/agent/acme-corp/archivist/main";
/** Granted azure_storage by policy/data.json, mapped to DEFAULT_CLIENT, but no federated credential names it. */
const UNFEDERATED_ID = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/main";

let identity: TestIdentity;
let policyDir: string;
let opa: OpaServer;
let entra: AzureFake;
let injector: CapturedInjector;
let tls: ClientTls;

/** The shipped policy and data, plus an agent granted azure_storage in the :read form. */
async function policyWithReadOnlyAzureGrant(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-policy-"));
  await cp(path.join(projectRoot, "policy", "exchange.rego"), path.join(dir, "exchange.rego"));
  const data = JSON.parse(await readFile(path.join(projectRoot, "policy", "data.json"), "utf8"));
  data.hexr.tenants["acme-corp"].agents.archivist = { roles: { "*": ["azure_storage:read"] } };
  await writeFile(path.join(dir, "data.json"), JSON.stringify(data));
  return dir;
}

function azureConfig(authorityHost: string, timeoutMs = 1000, overrides: Record<string, unknown> = {}): InjectorConfigInput["azure"] {
  return {
    authority_host: authorityHost,
    tenant_id: TENANT_ID,
    client_ids: { "*": DEFAULT_CLIENT, "acme-corp/research-analyst": RESEARCH_CLIENT },
    ca_file: identity.paths.ca,
    timeout_ms: timeoutMs,
    ...overrides,
  };
}

beforeAll(async () => {
  identity = await testIdentity();
  policyDir = await policyWithReadOnlyAzureGrant();
  opa = await startOpa({ policyDir });
  entra = await startAzureFake({
    cert: await readFile(identity.paths.listenerCert, "utf8"),
    key: await readFile(identity.paths.listenerKey, "utf8"),
    tenantId: TENANT_ID,
    issuer: { issuer: OIDC_ISSUER, resolve: resolverFor(OIDC_ISSUER, () => injector.discoveryUrl!) },
    // One federated credential per identity: the app trusts exactly the subjects it names.
    federatedSubjects: { [DEFAULT_CLIENT]: [MULTI_CLOUD_ID], [RESEARCH_CLIENT]: [ANALYST_ID] },
  });
  injector = await startCaptured({ ...baseConfig(identity, opa), azure: azureConfig(entra.url) });
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  await injector?.close();
  await entra?.close();
  await opa?.stop();
  await identity?.remove();
  if (policyDir) await rm(policyDir, { recursive: true, force: true });
});

async function exchange(spiffeId: string, service: string, options: { url?: string } = {}) {
  const token = await identity.mint(spiffeId);
  entra.tokenRequests.length = 0;
  const reply = await send(options.url ?? injector.url, { headers: filterHeaders(spiffeId, token), body: JSON.stringify({ service }), tls });
  return { token, reply };
}

describe("Azure exchange", () => {
  it("presents a client assertion it minted for Entra ID and returns a 1 h access token", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { token: jwtSvid, reply } = await exchange(MULTI_CLOUD_ID, "azure_storage");

    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ service: "azure_storage", provider: "azure", region: "eastus", spiffe_id: MULTI_CLOUD_ID });
    expect(reply.json.credentials).toEqual({ access_token: expect.any(String), token_type: "Bearer" });
    expect(reply.json.expires_at).toBeGreaterThanOrEqual(before + 3599 - 5);
    expect(reply.json.expires_at).toBeLessThanOrEqual(before + 3599 + 5);
    // Entra ID's v1 access token for the storage resource, as Azure Storage expects it.
    const accessToken = decodeJwt(reply.json.credentials.access_token);
    expect(accessToken).toMatchObject({ aud: "https://storage.azure.com", iss: `https://sts.windows.net/${TENANT_ID}/`, appid: DEFAULT_CLIENT, tid: TENANT_ID, ver: "1.0" });
    // MSAL dates the expiry by its own clock when the answer arrives (now + expires_in), Entra ID by
    // its clock when it minted the token: the two may fall on either side of a second's boundary.
    expect(Math.abs(accessToken.exp! - reply.json.expires_at)).toBeLessThanOrEqual(1);
    expect(accessToken.exp! - accessToken.nbf!).toBe(3599);

    expect(entra.tokenRequests).toHaveLength(1);
    const form = entra.tokenRequests[0];
    expect(form.get("grant_type")).toBe("client_credentials");
    expect(form.get("client_id")).toBe(DEFAULT_CLIENT);
    expect(form.get("scope")).toBe("https://storage.azure.com/.default");
    expect(form.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    // Not the agent's token: the injector's, for the federated credential's audience.
    const assertion = form.get("client_assertion")!;
    expect(assertion).not.toBe(jwtSvid);
    const claims = await verifyAgainstPublishedJwks(assertion, injector.discoveryUrl!, AZURE_AUDIENCE);
    expect(claims).toMatchObject({ iss: OIDC_ISSUER, sub: MULTI_CLOUD_ID, aud: AZURE_AUDIENCE });
    expect(claims.exp! - claims.iat!).toBe(300);
  });

  it("returns an access token Azure Storage's emulator accepts (Azurite, --oauth basic)", async () => {
    const azurite = await startAzuriteBlob({ identityDir: identity.paths.dir });
    try {
      const { reply } = await exchange(MULTI_CLOUD_ID, "azure_storage");
      const created = await send(azurite.url, {
        method: "PUT",
        path: `/${AZURITE_ACCOUNT}/static-identity-check?restype=container`,
        headers: { authorization: `Bearer ${reply.json.credentials.access_token}`, "x-ms-version": "2025-11-05" },
        tls: { ca: await readFile(azurite.caFile, "utf8") },
      });
      expect(created.status).toBe(201);
    } finally {
      await azurite.stop();
    }
  });

  it("uses the most specific client ID and the service's resource scope", async () => {
    const { reply } = await exchange(ANALYST_ID, "azure_openai");
    expect(reply.status).toBe(200);
    expect(entra.tokenRequests[0].get("client_id")).toBe(RESEARCH_CLIENT);
    expect(entra.tokenRequests[0].get("scope")).toBe("https://cognitiveservices.azure.com/.default");
  });

  it("refuses a :read grant, which an Azure token cannot be narrowed to", async () => {
    const { reply } = await exchange(ARCHIVIST_ID, "azure_storage");
    expect(reply.status).toBe(403);
    expect(reply.json.error.message).toBe("the granted scopes (read) of azure_storage cannot be enforced by this injector");
    expect(entra.tokenRequests).toHaveLength(0);
  });

  it("answers 502 with the error and AADSTS code when no federated credential names the identity", async () => {
    const { reply, token } = await exchange(UNFEDERATED_ID, "azure_storage");
    expect(reply.status).toBe(502);
    expect(reply.json).toEqual({ error: { type: "CredentialError", message: "Azure AD rejected the exchange: invalid_client: AADSTS700213" } });
    expect(decodeJwt(entra.tokenRequests[0].get("client_assertion")!).sub).toBe(UNFEDERATED_ID);
    for (const secret of [token, entra.tokenRequests[0].get("client_assertion")!]) expect(injector.logText()).not.toContain(secret);
  });

  it("answers 502 when the assertion's audience is not the federated credential's", async () => {
    const misconfigured = await startCaptured({ ...baseConfig(identity, opa), azure: azureConfig(entra.url, 1000, { token_audience: "api://AzureADMyOrg" }) });
    try {
      const { reply } = await exchange(MULTI_CLOUD_ID, "azure_storage", { url: misconfigured.url });
      expect(reply.status).toBe(502);
      expect(reply.json.error.message).toBe("Azure AD rejected the exchange: invalid_client: AADSTS700212");
    } finally {
      await misconfigured.close();
    }
  });

  it("refuses the agent's own JWT-SVID presented to Entra ID directly, whatever its audience", async () => {
    for (const audience of [undefined, AZURE_AUDIENCE]) {
      const response = await send(entra.url, {
        path: `/${TENANT_ID}/oauth2/v2.0/token`,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: DEFAULT_CLIENT,
          scope: "https://storage.azure.com/.default",
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: await identity.mint(MULTI_CLOUD_ID, { audience }),
        }).toString(),
        tls: { ca: await readFile(identity.paths.ca, "utf8") },
      });
      expect(response.status).toBe(401);
      expect(response.json).toMatchObject({ error: "invalid_client", error_codes: [700211] });
    }
  });

  it("answers 504 within the timeout when Entra ID is slow", async () => {
    entra.delayMs = 3000;
    try {
      const started = Date.now();
      const { reply } = await exchange(MULTI_CLOUD_ID, "azure_storage");
      expect(reply.status).toBe(504);
      expect(reply.json.error.message).toBe("Azure AD did not answer within 1000 ms");
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      entra.delayMs = 0;
    }
  });

  it("answers 503 when Entra ID is unreachable", async () => {
    const unreachable = await startCaptured({ ...baseConfig(identity, opa), azure: azureConfig(`https://127.0.0.1:${await freePort()}`, 3000) });
    try {
      const { reply } = await exchange(MULTI_CLOUD_ID, "azure_storage", { url: unreachable.url });
      expect(reply.status).toBe(503);
      expect(reply.json.error.message).toBe("Azure AD is unreachable");
    } finally {
      await unreachable.close();
    }
  });
});
