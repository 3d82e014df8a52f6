// Identities the sidecar asserts itself (identity source `static`): its metadata listeners serve
// the GCE metadata and Azure managed-identity protocols, which carry no caller credential, so the
// filter calls the injector with no JWT-SVID. The injector believes such an identity only over
// mTLS, from a caller a rule lists for exactly that identity; everything else stays 401. Then the
// identity goes through OPA and to the clouds as a JWT-SVID's would (revocations: revocation.test.ts).
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SIDECAR_SPIFFE_ID, issueX509Svid } from "../../support/dev-identity.ts";
import { startAzureFake, type AzureFake } from "../../support/fakes/azure.ts";
import { GCP_AUDIENCE, startGcpFake, type GcpFake } from "../../support/fakes/gcp.ts";
import { resolverFor } from "../../support/fakes/oidc-federation.ts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import type { InjectorConfigInput } from "../server.ts";
import {
  ANALYST_ID, DEFAULT_ROLE_ARN, MULTI_CLOUD_ID, OIDC_ISSUER, assertedHeaders, baseConfig, filterHeaders, send, sidecarTls, startCaptured,
  testIdentity, type CapturedInjector, type ClientTls, type Reply, type TestIdentity,
} from "./helpers.ts";

const WRITER_ID = "spiffe://hexr.local/agent/acme-corp/content-crew/writer";
const TENANT_ID = "9c5f2a1e-4b7d-4e8a-9f3c-2d6b8a1e7f40";
const ACME_CLIENT = "a1c3e5f7-0000-4000-8000-000000000001";
const ACME_SA = "acme-corp-agents@hexr-dev.iam.gserviceaccount.com";
/** What the dev sidecar may assert: one identity exactly, one agent's every role by prefix. */
const STATIC_IDENTITIES = [MULTI_CLOUD_ID, "spiffe://hexr.local/agent/acme-corp/content-crew/*"];

let identity: TestIdentity;
let opa: OpaServer;
let moto: MotoServer;
let google: GcpFake;
let entra: AzureFake;
let injector: CapturedInjector;
/** The dev sidecar's mTLS client: the caller the rule names. */
let sidecar: ClientTls;

function injectorConfig(overrides: InjectorConfigInput = {}): InjectorConfigInput {
  return {
    ...baseConfig(identity, opa),
    caller_rules: [{ spiffe_id: DEFAULT_SIDECAR_SPIFFE_ID, static_identities: STATIC_IDENTITIES }],
    aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    gcp: {
      sts_endpoint: `${google.url}/v1/token`,
      iam_credentials_endpoint: google.url,
      workload_identity_provider: GCP_AUDIENCE,
      service_accounts: { "acme-corp": ACME_SA },
    },
    azure: { authority_host: entra.url, tenant_id: TENANT_ID, client_ids: { "acme-corp": ACME_CLIENT }, ca_file: identity.paths.ca },
    ...overrides,
  };
}

beforeAll(async () => {
  identity = await testIdentity();
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
  const issuer = { issuer: OIDC_ISSUER, resolve: resolverFor(OIDC_ISSUER, () => injector.discoveryUrl!) };
  google = await startGcpFake({ provider: issuer, serviceAccounts: [ACME_SA] });
  entra = await startAzureFake({
    cert: await readFile(identity.paths.listenerCert, "utf8"),
    key: await readFile(identity.paths.listenerKey, "utf8"),
    tenantId: TENANT_ID,
    issuer,
    federatedSubjects: { [ACME_CLIENT]: [MULTI_CLOUD_ID] },
  });
  injector = await startCaptured(injectorConfig());
  sidecar = await sidecarTls(identity);
});

afterAll(async () => {
  await injector?.close();
  await Promise.all([opa?.stop(), moto?.stop(), google?.close(), entra?.close()]);
  await identity?.remove();
});

function ask(headers: Record<string, string>, options: { service?: string; client?: ClientTls; url?: string } = {}): Promise<Reply> {
  return send(options.url ?? injector.url, { headers, body: JSON.stringify({ service: options.service ?? "aws_s3" }), tls: options.client ?? sidecar });
}

/** The mTLS client of a workload with its own X.509-SVID from the dev CA. */
async function clientWithSvid(spiffeId: string): Promise<ClientTls> {
  const svid = await issueX509Svid(spiffeId, identity.paths.dir);
  return sidecarTls(identity, svid.cert, svid.key);
}

function expectUnauthenticated(reply: Reply, message: string) {
  expect(reply.status).toBe(401);
  expect(reply.json).toEqual({ error: { type: "AuthenticationError", message } });
}

const lastExchangeLine = () => injector.logLines().filter((line) => line.msg === "exchange").at(-1);

describe("an identity the sidecar asserts (static, no JWT-SVID)", () => {
  it("is accepted from the caller a rule lists for it, exactly or by prefix, and logged as static", async () => {
    const reply = await ask(assertedHeaders(MULTI_CLOUD_ID));
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ service: "aws_s3", provider: "aws", spiffe_id: MULTI_CLOUD_ID });
    expect(lastExchangeLine()).toMatchObject({
      spiffe_id: MULTI_CLOUD_ID, caller: DEFAULT_SIDECAR_SPIFFE_ID, identity_source: "static", decision: "allow", outcome: "issued", status: 200,
    });

    const writer = await ask(assertedHeaders(WRITER_ID));
    expect(writer.status).toBe(200);
    expect(writer.json.spiffe_id).toBe(WRITER_ID);
  });

  it("gets what OPA grants it from every cloud: the door identity's aws_s3, gcp_storage and azure_storage", async () => {
    for (const [service, provider] of [["aws_s3", "aws"], ["gcp_storage", "gcp"], ["azure_storage", "azure"]]) {
      const reply = await ask(assertedHeaders(MULTI_CLOUD_ID), { service });
      expect(reply.status, service).toBe(200);
      expect(reply.json).toMatchObject({ service, provider, spiffe_id: MULTI_CLOUD_ID });
    }
  });

  it("is denied by OPA what it is not granted, as a JWT-SVID's identity would be", async () => {
    const reply = await ask(assertedHeaders(MULTI_CLOUD_ID), { service: "aws_dynamodb" });
    expect(reply.status).toBe(403);
    expect(reply.json.error.message).toMatch(/^policy denied: /);
    expect(lastExchangeLine()).toMatchObject({ spiffe_id: MULTI_CLOUD_ID, identity_source: "static", decision: "deny", status: 403 });
  });

  it("must agree with the tenant, agent and role headers, and be an agent SPIFFE ID", async () => {
    expectUnauthenticated(await ask(assertedHeaders(MULTI_CLOUD_ID, { "x-hexr-tenant": "globex" })), "x-hexr-tenant does not match the SPIFFE ID");
    expectUnauthenticated(await ask(assertedHeaders(MULTI_CLOUD_ID, { "x-hexr-role": "other" })), "x-hexr-role does not match the SPIFFE ID");
    const { "x-hexr-spiffe-id": _, ...withoutId } = assertedHeaders(MULTI_CLOUD_ID);
    expectUnauthenticated(await ask(withoutId), "x-hexr-spiffe-id is required");
    expectUnauthenticated(await ask({ ...withoutId, "x-hexr-spiffe-id": DEFAULT_SIDECAR_SPIFFE_ID }), "x-hexr-spiffe-id is not an agent SPIFFE ID");
  });
});

describe("asserting an identity without the right to", () => {
  it("an agent process with its own X.509-SVID cannot assert another identity, nor its own", async () => {
    const agent = await clientWithSvid(ANALYST_ID);
    const refused = `caller ${ANALYST_ID} may not assert this static identity (caller_rules static_identities)`;
    expectUnauthenticated(await ask(assertedHeaders(MULTI_CLOUD_ID), { client: agent }), refused);
    expectUnauthenticated(await ask(assertedHeaders(ANALYST_ID), { client: agent }), refused);
    expect(lastExchangeLine()).toMatchObject({ caller: ANALYST_ID, decision: "not_reached", outcome: "unauthenticated", status: 401 });
  });

  it("a sidecar allowed to assert some identities cannot assert others, even of its own tenant", async () => {
    const refused = `caller ${DEFAULT_SIDECAR_SPIFFE_ID} may not assert this static identity (caller_rules static_identities)`;
    expectUnauthenticated(await ask(assertedHeaders(ANALYST_ID)), refused);
    expectUnauthenticated(await ask(assertedHeaders("spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/other")), refused);
    // A prefix rule ends at a path boundary.
    expectUnauthenticated(await ask(assertedHeaders("spiffe://hexr.local/agent/acme-corp/content-crew-x/writer")), refused);
  });

  it("a sidecar of the same tenant that no rule names gets no implicit right", async () => {
    const otherPod = "spiffe://hexr.local/sidecar/acme-corp/pod-2";
    const reply = await ask(assertedHeaders(MULTI_CLOUD_ID), { client: await clientWithSvid(otherPod) });
    expectUnauthenticated(reply, `caller ${otherPod} may not assert this static identity (caller_rules static_identities)`);
  });

  it("plain HTTP, or TLS without a client certificate, cannot assert anything", async () => {
    const noMtls = "a static identity is accepted only over mTLS, from a caller allowed to assert it";
    const plain = await startCaptured(injectorConfig({ tls: null }));
    const optionalCert = await startCaptured(injectorConfig({
      tls: { cert_file: identity.paths.injectorCert, key_file: identity.paths.injectorKey, client_ca_file: identity.paths.ca, require_client_cert: false },
    }));
    try {
      expectUnauthenticated(await send(plain.url, { headers: assertedHeaders(MULTI_CLOUD_ID), body: JSON.stringify({ service: "aws_s3" }) }), noMtls);
      expectUnauthenticated(await ask(assertedHeaders(MULTI_CLOUD_ID), { url: optionalCert.url, client: { ca: sidecar.ca } }), noMtls);
      // The listed sidecar's certificate on the same listener is what makes the difference.
      expect((await ask(assertedHeaders(MULTI_CLOUD_ID), { url: optionalCert.url })).status).toBe(200);
    } finally {
      await Promise.all([plain.close(), optionalCert.close()]);
    }
  });
});

describe("the identity source and the Authorization header", () => {
  it("refuses a static identity that comes with an Authorization header, even a valid JWT-SVID for it", async () => {
    const message = "a static identity is asserted by the sidecar alone: send no Authorization header with it";
    const token = await identity.mint(MULTI_CLOUD_ID);
    expectUnauthenticated(await ask(assertedHeaders(MULTI_CLOUD_ID, { authorization: `Bearer ${token}` })), message);
    expectUnauthenticated(await ask(assertedHeaders(MULTI_CLOUD_ID, { authorization: "" })), message);
  });

  it("still requires a JWT-SVID for every other identity source, whatever the caller may assert", async () => {
    const { authorization: _, ...jwtWithoutToken } = filterHeaders(MULTI_CLOUD_ID, "none");
    for (const source of ["jwt", "mtls", "STATIC", undefined]) {
      const { "x-hexr-identity-source": __, ...headers } = jwtWithoutToken;
      const reply = await ask(source === undefined ? headers : { ...headers, "x-hexr-identity-source": source });
      expectUnauthenticated(reply, "a JWT-SVID is required in Authorization: Bearer");
    }
  });
});
