// Azure federated client-assertion flow against the real OPA server and a loopback stand-in for
// Entra ID (see fakes/azure.ts: no local emulator exists).
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { freePort } from "../../support/processes.ts";
import { projectRoot } from "../../support/tools.ts";
import type { InjectorConfigInput } from "../server.ts";
import { startAzureFake, type AzureFake } from "./fakes/azure.ts";
import {
  ANALYST_ID, MULTI_CLOUD_ID, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const DEFAULT_CLIENT = "11111111-1111-1111-1111-111111111111";
const RESEARCH_CLIENT = "22222222-2222-2222-2222-222222222222";
const ARCHIVIST_ID = "spiffe://hexr.local/agent/acme-corp/archivist/main";

let identity: TestIdentity;
let policyDir: string;
let opa: OpaServer;
let entra: AzureFake;
let injector: CapturedInjector;
let tls: ClientTls;
const minted = new Set<string>();

/** The shipped policy and data, plus an agent granted azure_storage in the :read form. */
async function policyWithReadOnlyAzureGrant(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-policy-"));
  await cp(path.join(projectRoot, "policy", "exchange.rego"), path.join(dir, "exchange.rego"));
  const data = JSON.parse(await readFile(path.join(projectRoot, "policy", "data.json"), "utf8"));
  data.hexr.tenants["acme-corp"].agents.archivist = { roles: { "*": ["azure_storage:read"] } };
  await writeFile(path.join(dir, "data.json"), JSON.stringify(data));
  return dir;
}

function azureConfig(authorityHost: string, timeoutMs = 1000): InjectorConfigInput["azure"] {
  return {
    authority_host: authorityHost,
    tenant_id: TENANT_ID,
    client_ids: { "*": DEFAULT_CLIENT, "acme-corp/research-analyst": RESEARCH_CLIENT },
    ca_file: identity.paths.ca,
    timeout_ms: timeoutMs,
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
    clientIds: [DEFAULT_CLIENT, RESEARCH_CLIENT],
    acceptsAssertion: (assertion) => minted.has(assertion),
  });
  injector = await startCaptured({ ...baseConfig(identity, opa.url), azure: azureConfig(entra.url) });
  tls = await sidecarTls(identity);
});

afterAll(async () => {
  await injector?.close();
  await entra?.close();
  await opa?.stop();
  await identity?.remove();
  if (policyDir) await rm(policyDir, { recursive: true, force: true });
});

async function exchange(spiffeId: string, service: string, options: { mintedByUs?: boolean; url?: string } = {}) {
  const token = await identity.mint(spiffeId);
  if (options.mintedByUs ?? true) minted.add(token);
  entra.tokenRequests.length = 0;
  const reply = await send(options.url ?? injector.url, { headers: filterHeaders(spiffeId, token), body: JSON.stringify({ service }), tls });
  return { token, reply };
}

describe("Azure exchange", () => {
  it("presents the JWT-SVID as the client assertion and returns a 1 h access token", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { token, reply } = await exchange(MULTI_CLOUD_ID, "azure_storage");

    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ service: "azure_storage", provider: "azure", region: "eastus", spiffe_id: MULTI_CLOUD_ID });
    expect(reply.json.credentials).toEqual({ access_token: expect.stringMatching(/\.azure-/), token_type: "Bearer" });
    expect(reply.json.expires_at).toBeGreaterThanOrEqual(before + 3599 - 5);
    expect(reply.json.expires_at).toBeLessThanOrEqual(before + 3599 + 5);

    expect(entra.tokenRequests).toHaveLength(1);
    const form = entra.tokenRequests[0];
    expect(form.get("grant_type")).toBe("client_credentials");
    expect(form.get("client_id")).toBe(DEFAULT_CLIENT);
    expect(form.get("scope")).toBe("https://storage.azure.com/.default");
    expect(form.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    expect(form.get("client_assertion")).toBe(token);
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

  it("answers 502 with the error and AADSTS code when Entra ID rejects the assertion", async () => {
    const { reply, token } = await exchange(MULTI_CLOUD_ID, "azure_storage", { mintedByUs: false });
    expect(reply.status).toBe(502);
    expect(reply.json).toEqual({ error: { type: "CredentialError", message: "Azure AD rejected the exchange: invalid_client: AADSTS700213" } });
    expect(injector.logText()).not.toContain(token);
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
    const unreachable = await startCaptured({ ...baseConfig(identity, opa.url), azure: azureConfig(`https://127.0.0.1:${await freePort()}`, 3000) });
    try {
      const { reply } = await exchange(MULTI_CLOUD_ID, "azure_storage", { url: unreachable.url });
      expect(reply.status).toBe(503);
      expect(reply.json.error.message).toBe("Azure AD is unreachable");
    } finally {
      await unreachable.close();
    }
  });
});
