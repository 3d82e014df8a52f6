// The stock-SDK doors in the real sidecar, driven as a hostile or careless client would: every bad
// input gets the protocol's own error and no credential, the VM stays up (a good request right
// after is served), and every door shares one cache with POST /exchange: the same identity asking
// through several doors costs one exchange at the injector.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { METADATA_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import type { MetadataDoors } from "../stack/envoy.ts";
import { SecretLedger, eventually, exchange, expectNoSecretsInLogs, injectorExchangeLines, request, sleep, summary, type HttpAnswer } from "./helpers.ts";

let stack: Stack;
let metadata: MetadataDoors;
let token: string;
const ledger = new SecretLedger();

beforeAll(async () => {
  stack = await startStack();
  metadata = stack.envoy.metadataListeners[0];
  token = ledger.token(await mintJwtSvid(METADATA_AGENT_ID));
});

afterAll(async () => {
  await stack?.stop();
});

const aws = (headers: [string, string][], query = "", method = "GET") => request(`${stack.envoy.awsCredentialsUrl}${query}`, { method, headers });
const gce = (path: string, headers: [string, string][] = [["metadata-flavor", "Google"]]) => request(`http://${metadata.gceMetadataHost}${path}`, { headers });
const azure = (query: string, headers: [string, string][]) => request(`${metadata.azureIdentityEndpoint}?${query}`, { headers });
const GCE_TOKEN = "/computeMetadata/v1/instance/service-accounts/default/token";
const STORAGE = "api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com%2F";

/** Exchanges the injector logged for `spiffeId` and `service` (its log lines may land a moment after the answer). */
function exchangesOf(spiffeId: string, service: string): number {
  return injectorExchangeLines(stack).filter((line) => line.status === 200 && line.spiffe_id === spiffeId && line.service === service).length;
}

/** Waits for the injector to have logged `expected` such exchanges, then checks no more follow. */
async function expectExchanges(spiffeId: string, service: string, expected: number): Promise<void> {
  await eventually(`${expected} exchanges of ${service} logged`, async () => exchangesOf(spiffeId, service) >= expected);
  await sleep(300);
  expect(exchangesOf(spiffeId, service), `exchanges of ${service} for ${spiffeId}`).toBe(expected);
}

function expectNoCredential(answer: HttpAnswer): void {
  expect(answer.text).not.toMatch(/AccessKeyId|SecretAccessKey|access_token/);
  expect(answer.headers["x-hexr-cache"]).toBeUndefined();
}

describe("the doors refuse bad input in their own protocol's format", () => {
  it("AWS: a forged, missing or Bearer-prefixed token, another method, a bad query → {code, message}", async () => {
    const [header, payload] = token.split(".");
    const forged = `${header}.${payload}.${"A".repeat(86)}`;
    const cases: [string, Promise<HttpAnswer>, number][] = [
      ["forged signature", aws([["authorization", forged]]), 401],
      ["no token", aws([]), 401],
      ["Bearer scheme (the SDKs send none)", aws([["authorization", `Bearer ${token}`]]), 401],
      ["POST", aws([["authorization", token]], "", "POST"), 405],
      ["unknown service", aws([["authorization", token]], "?service=aws_nope"), 400],
      ["region not served", aws([["authorization", token]], "?region=mars-1"), 400],
    ];
    for (const [what, pending, status] of cases) {
      const answer = await pending;
      expect(answer.status, `${what}: ${summary(answer)}`).toBe(status);
      expect(Object.keys(answer.json ?? {}).sort(), what).toEqual(["code", "message"]);
      expectNoCredential(answer);
    }
  });

  it("GCE: a missing or wrong Metadata-Flavor, an unknown path → plain text, with Metadata-Flavor", async () => {
    const cases: [string, Promise<HttpAnswer>, number][] = [
      ["no Metadata-Flavor", gce(GCE_TOKEN, []), 403],
      ["Metadata-Flavor: google", gce(GCE_TOKEN, [["metadata-flavor", "google"]]), 403],
      ["an SSRF-style proxy header only", gce(GCE_TOKEN, [["x-forwarded-for", "10.0.0.1"]]), 403],
      ["unknown path", gce("/computeMetadata/v1/instance/attributes/kube-env"), 404],
      ["another account", gce("/computeMetadata/v1/instance/service-accounts/root@x.iam.gserviceaccount.com/token"), 404],
      ["a path outside the metadata tree", gce("/exchange"), 404],
    ];
    for (const [what, pending, status] of cases) {
      const answer = await pending;
      expect(answer.status, `${what}: ${summary(answer)}`).toBe(status);
      expect(answer.json, what).toBeUndefined();
      expectNoCredential(answer);
    }
    // The filter answered these (Metadata-Flavor on its refusals); Envoy's own 404 for a path
    // outside the doors has none, and never enters the VM.
    expect((await gce(GCE_TOKEN, [])).headers["metadata-flavor"]).toBe("Google");
  });

  it("Azure: a missing or wrong X-IDENTITY-HEADER, a bad api-version or resource → {error, error_description}", async () => {
    const secret = metadata.azureIdentityHeader!;
    const cases: [string, Promise<HttpAnswer>, number][] = [
      ["no X-IDENTITY-HEADER", azure(STORAGE, [["metadata", "true"]]), 400],
      ["a wrong X-IDENTITY-HEADER", azure(STORAGE, [["x-identity-header", `${secret.slice(0, -1)}${secret.endsWith("0") ? "1" : "0"}`]]), 401],
      ["an old api-version", azure("api-version=2017-09-01&resource=https://storage.azure.com", [["x-identity-header", secret]]), 400],
      ["an unknown resource", azure("api-version=2019-08-01&resource=https://vault.azure.net", [["x-identity-header", secret]]), 400],
      ["a user-assigned identity", azure(`${STORAGE}&client_id=00000000-0000-0000-0000-000000000000`, [["x-identity-header", secret]]), 400],
    ];
    for (const [what, pending, status] of cases) {
      const answer = await pending;
      expect(answer.status, `${what}: ${summary(answer)}`).toBe(status);
      expect(Object.keys(answer.json ?? {}).sort(), what).toEqual(["error", "error_description"]);
      expectNoCredential(answer);
    }
  });

  it("leaves the VM serving: good requests right after are answered", async () => {
    expect((await aws([["authorization", token]])).status).toBe(200);
    expect((await gce(GCE_TOKEN)).status).toBe(200);
    expect((await azure(STORAGE, [["x-identity-header", metadata.azureIdentityHeader!]])).status).toBe(200);
  });
});

describe("one cache under every door", () => {
  it("the same identity through /exchange and its protocol door triggers one exchange per credential", async () => {
    const researcherId = "spiffe://hexr.local/agent/acme-corp/research-analyst/main";
    const researcher = ledger.token(await mintJwtSvid(researcherId));
    const viaExchange = await exchange(stack.envoy, { token: researcher, service: "aws_s3" });
    expect(viaExchange.status, summary(viaExchange)).toBe(200);
    ledger.credentials(viaExchange.json);
    const viaDoor = await aws([["authorization", researcher]]);
    expect(viaDoor.status, summary(viaDoor)).toBe(200);
    expect(viaDoor.headers["x-hexr-cache"]).toBe("L1");
    expect(viaDoor.json.AccessKeyId).toBe(viaExchange.json.credentials.AccessKeyId);
    await expectExchanges(researcherId, "aws_s3", 1);
  });

  it("the metadata listener's identity: GCE and Azure doors and /exchange share its credentials", async () => {
    // The doors asked first, in the test before: one exchange each, and none from here on.
    const door = await gce(GCE_TOKEN);
    expect(door.status, summary(door)).toBe(200);
    const viaExchange = await exchange(stack.envoy, { token, service: "gcp_storage" });
    expect(viaExchange.status, summary(viaExchange)).toBe(200);
    ledger.credentials(viaExchange.json);
    expect(viaExchange.headers["x-hexr-cache"]).toBe("L1");
    expect(door.json.access_token).toBe(viaExchange.json.credentials.access_token);
    const azureDoor = await azure(STORAGE, [["x-identity-header", metadata.azureIdentityHeader!]]);
    const azureExchange = await exchange(stack.envoy, { token, service: "azure_storage" });
    ledger.credentials(azureExchange.json);
    expect(azureExchange.headers["x-hexr-cache"]).toBe("L1");
    expect(azureDoor.json.access_token).toBe(azureExchange.json.credentials.access_token);
    await expectExchanges(METADATA_AGENT_ID, "gcp_storage", 1);
    await expectExchanges(METADATA_AGENT_ID, "azure_storage", 1);
  });

  it("puts no token or credential in any log", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
