// The stock-SDK doors (assembly/doors/aws-container.ts, gce-metadata.ts, azure-managed-identity.ts):
// each protocol's requests and answers as the SDKs speak them, the guards each protocol has, bad
// input answered in the protocol's own error format, and one cache under every door.

import { describe, expect, it } from "vitest";
import type { HttpStream, Vm } from "./host/index.ts";
import {
  AGENT,
  answerWithCredential,
  cacheKey,
  cacheValue,
  credential,
  expectInjectorCall,
  expectNothingOnward,
  INJECTOR,
  jwtMetadata,
  sendExchange,
  startFilter,
  type Credential,
  type Filter,
} from "./support/exchange.ts";

const JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmUifQ.c2ln";
const AWS_PATH = "/v1/aws/credentials";
const AZURE_PATH = "/metadata/identity/oauth2/token";
const IDENTITY_HEADER = "d2f1c0ffee5e1ec7ab1e5ecre7";
const TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token";
const METADATA_IDENTITY = AGENT.reporter;

const AWS_DOOR = { aws_container: { path: AWS_PATH } };
/** A metadata listener's filter: the GCE and Azure doors, as the listener's one identity. */
const METADATA_DOORS = {
  identity_sources: ["static"],
  static_spiffe_id: METADATA_IDENTITY,
  gce_metadata: { project_id: "hexr-dev", numeric_project_id: "123456789", service_account_email: "reporter@hexr-dev.iam.gserviceaccount.com" },
  azure_managed_identity: { path: AZURE_PATH, identity_header: IDENTITY_HEADER },
};

function get(vm: Vm, path: string, headers: Record<string, string>, properties = {}): HttpStream {
  const stream = vm.newHttpStream({ properties });
  stream.sendRequestHeaders({ ":method": "GET", ":path": path, ":authority": "127.0.0.1:15080", ":scheme": "http", ...headers }, { endOfStream: true });
  return stream;
}

/** An AWS SDK's fetch: the token file's content as the Authorization header, jwt_authn's payload for it. */
function awsFetch(vm: Vm, options: { path?: string; sub?: string; headers?: Record<string, string>; method?: string } = {}): HttpStream {
  const stream = vm.newHttpStream({ properties: jwtMetadata({ sub: options.sub ?? AGENT.dataPipeline, iss: "spiffe://hexr.local" }) });
  stream.sendRequestHeaders(
    { ":method": options.method ?? "GET", ":path": options.path ?? AWS_PATH, ":authority": "127.0.0.1:15080", ":scheme": "http", authorization: JWT, ...options.headers },
    { endOfStream: true },
  );
  return stream;
}

function gceFetch(vm: Vm, path: string, headers: Record<string, string> = { "metadata-flavor": "Google" }): HttpStream {
  return get(vm, path, headers);
}

function azureFetch(vm: Vm, query: string, headers: Record<string, string> = { "x-identity-header": IDENTITY_HEADER, metadata: "true" }): HttpStream {
  return get(vm, `${AZURE_PATH}?${query}`, headers);
}

function answerL3(filter: Filter, issued: Credential): void {
  const calls = filter.host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster);
  expect(calls.length, "pending calls to the injector").toBe(1);
  answerWithCredential(calls[0], issued);
}

function json(stream: HttpStream): Record<string, unknown> {
  expect(stream.response, "no response reached the client").toBeDefined();
  return stream.response!.json() as Record<string, unknown>;
}

function expectNoSecret(stream: HttpStream, issued: Credential): void {
  for (const secret of issued.secrets) expect(stream.response!.bodyText).not.toContain(secret);
}

describe("the AWS container-credentials door", () => {
  it("answers a miss with the container-credentials JSON built from the injector's answer, and the next fetch from L1", () => {
    const filter = startFilter(AWS_DOOR);
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    const first = awsFetch(filter.vm);
    expect(first.response).toBeUndefined();
    expectInjectorCall(filter.host, { spiffeId: AGENT.dataPipeline, source: "jwt", service: "aws_s3", region: "us-east-1", authorization: `Bearer ${JWT}` });
    answerL3(filter, issued);
    const aws = JSON.parse(issued.body).credentials;
    const expected = { AccessKeyId: aws.AccessKeyId, SecretAccessKey: aws.SecretAccessKey, Token: aws.SessionToken, Expiration: new Date(issued.expiresAt * 1000).toISOString().replace(".000Z", "Z") };
    expect(first.response!.status).toBe(200);
    expect(first.response!.headers.getAll("x-hexr-cache")).toEqual(["L3"]);
    expect(json(first)).toEqual(expected);

    const second = awsFetch(filter.vm);
    expect(second.response!.status).toBe(200);
    expect(second.response!.headers.getAll("x-hexr-cache")).toEqual(["L1"]);
    expect(second.response!.headers.getAll("x-hexr-spiffe-id")).toEqual([AGENT.dataPipeline]);
    expect(json(second)).toEqual(expected);
    expect(filter.host.pendingHttpCalls()).toEqual([]);
    expectNothingOnward(second);
  });

  it("answers an L1 hit in the headers callback itself: a GET has no body to wait for", () => {
    const filter = startFilter(AWS_DOOR);
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    filter.host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(issued, filter.host.clock.nowSeconds));
    const stream = awsFetch(filter.vm);
    expect(stream.response?.status).toBe(200);
    expect(stream.state).toBe("complete");
  });

  it("takes the service and region from the query, and keys the credential by them", () => {
    const filter = startFilter(AWS_DOOR);
    awsFetch(filter.vm, { path: `${AWS_PATH}?service=aws_dynamodb&region=eu-west-1` });
    expectInjectorCall(filter.host, { spiffeId: AGENT.dataPipeline, source: "jwt", service: "aws_dynamodb", region: "eu-west-1", authorization: `Bearer ${JWT}` });
  });

  it("gives two processes with different SPIFFE IDs their own credentials", () => {
    const filter = startFilter(AWS_DOOR);
    const mine = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    filter.host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(mine, filter.host.clock.nowSeconds));
    const other = awsFetch(filter.vm, { sub: AGENT.reporter });
    expect(other.response).toBeUndefined();
    expectInjectorCall(filter.host, { spiffeId: AGENT.reporter, source: "jwt", service: "aws_s3", region: "us-east-1", authorization: `Bearer ${JWT}` });
  });

  it.each([
    ["no verified JWT-SVID", { properties: {} }, 401, "AuthenticationError"],
    ["a POST", { method: "POST" }, 405, "BadRequest"],
    ["two tokens", { headers: { authorization: `${JWT},${JWT}` } }, 401, "AuthenticationError"],
    ["a service of another cloud", { path: `${AWS_PATH}?service=gcp_storage` }, 400, "BadRequest"],
    ["an unknown service", { path: `${AWS_PATH}?service=aws_nope` }, 400, "BadRequest"],
    ["a region AWS does not serve", { path: `${AWS_PATH}?region=mars-1` }, 400, "BadRequest"],
    ["a malformed escape", { path: `${AWS_PATH}?service=aws_s%3` }, 400, "BadRequest"],
    ["an encoded control character", { path: `${AWS_PATH}?service=aws_s3%0a` }, 400, "BadRequest"],
  ] as const)("refuses %s in the ECS error format, with no call onward", (_, options, status, code) => {
    const filter = startFilter(AWS_DOOR);
    let stream: HttpStream;
    if ("properties" in options) {
      stream = filter.vm.newHttpStream({ properties: options.properties });
      stream.sendRequestHeaders({ ":method": "GET", ":path": AWS_PATH, ":authority": "x", ":scheme": "http", authorization: JWT }, { endOfStream: true });
    } else {
      stream = awsFetch(filter.vm, options);
    }
    expect(stream.response!.status).toBe(status);
    const body = json(stream);
    expect(Object.keys(body).sort()).toEqual(["code", "message"]);
    expect(body.code).toBe(code);
    expect(filter.host.pendingHttpCalls()).toEqual([]);
    expect(filter.vm.failed).toBeUndefined();
  });

  it("refuses a service outside the agent's resources", () => {
    const filter = startFilter({ ...AWS_DOOR, resources: { "acme-corp/data-pipeline": ["aws_dynamodb"] } });
    const stream = awsFetch(filter.vm);
    expect(stream.response!.status).toBe(403);
    expect(json(stream).code).toBe("CredentialError");
  });

  it("is closed unless configured: the path then passes through untouched", () => {
    const filter = startFilter({});
    const stream = awsFetch(filter.vm);
    expect(stream.response).toBeUndefined();
    expect(stream.forwardedRequest).toBeDefined();
  });
});

describe("the GCE metadata door", () => {
  it("answers the detection pings and the service account's description, each with Metadata-Flavor: Google", () => {
    const { vm } = startFilter(METADATA_DOORS);
    const cases: [string, string][] = [
      ["/", "computeMetadata/\n"],
      ["/computeMetadata/v1/instance", "service-accounts/\n"],
      ["/computeMetadata/v1/project/project-id", "hexr-dev"],
      ["/computeMetadata/v1/project/numeric-project-id", "123456789"],
      ["/computeMetadata/v1/universe/universe-domain", "googleapis.com"],
      ["/computeMetadata/v1/instance/service-accounts/default/email", "reporter@hexr-dev.iam.gserviceaccount.com"],
    ];
    for (const [path, body] of cases) {
      const stream = gceFetch(vm, path);
      expect(stream.response!.status, path).toBe(200);
      expect(stream.response!.bodyText, path).toBe(body);
      expect(stream.response!.headers.getAll("metadata-flavor"), path).toEqual(["Google"]);
    }
    const described = gceFetch(vm, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true");
    expect(described.response!.headers.get("content-type")).toBe("application/json");
    expect(json(described)).toEqual({ aliases: ["default"], email: "reporter@hexr-dev.iam.gserviceaccount.com", scopes: ["https://www.googleapis.com/auth/cloud-platform"] });
  });

  it("answers a token request with the listener identity's credential, from L3 then L1, by account alias or email", () => {
    const filter = startFilter(METADATA_DOORS);
    const issued = credential({ spiffeId: METADATA_IDENTITY, service: "gcp_storage", region: "us-central1", expiresAt: filter.host.clock.nowSeconds + 3600 });
    const first = gceFetch(filter.vm, `${TOKEN_PATH}?scopes=https://www.googleapis.com/auth/devstorage.read_write`);
    expectInjectorCall(filter.host, { spiffeId: METADATA_IDENTITY, source: "static", service: "gcp_storage", region: "us-central1" });
    answerL3(filter, issued);
    const expected = { access_token: JSON.parse(issued.body).credentials.access_token, expires_in: 3600, token_type: "Bearer" };
    expect(json(first)).toEqual(expected);
    expect(first.response!.headers.getAll("metadata-flavor")).toEqual(["Google"]);

    filter.host.advance(60_000);
    const byEmail = gceFetch(filter.vm, "/computeMetadata/v1/instance/service-accounts/reporter@hexr-dev.iam.gserviceaccount.com/token");
    expect(byEmail.response!.headers.getAll("x-hexr-cache")).toEqual(["L1"]);
    expect(json(byEmail)).toEqual({ ...expected, expires_in: 3540 });
    expect(filter.host.pendingHttpCalls()).toEqual([]);
  });

  it("refreshes the listener identity's credential ahead of expiry, though no JWT-SVID is at hand", () => {
    const filter = startFilter(METADATA_DOORS);
    const { host } = filter;
    const issued = credential({ spiffeId: METADATA_IDENTITY, service: "gcp_storage", region: "us-central1", expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(cacheKey(METADATA_IDENTITY, "gcp_storage", "us-central1"), cacheValue(issued, host.clock.nowSeconds));
    // Servable for 3600 − 1200 s; the last 25 % of that starts at 1800 s.
    host.advance(1900 * 1000);
    const stream = gceFetch(filter.vm, TOKEN_PATH);
    expect(stream.response!.headers.getAll("x-hexr-cache")).toEqual(["L1"]);
    expectInjectorCall(host, { spiffeId: METADATA_IDENTITY, source: "static", service: "gcp_storage", region: "us-central1" });
  });

  it.each([
    ["no Metadata-Flavor", TOKEN_PATH, {}, 403],
    ["a wrong Metadata-Flavor", TOKEN_PATH, { "metadata-flavor": "google" }, 403],
    ["two Metadata-Flavor headers", TOKEN_PATH, { "metadata-flavor": "Google,Google" }, 403],
    ["an unknown path", "/computeMetadata/v1/instance/attributes/kube-env", { "metadata-flavor": "Google" }, 404],
    ["another service account", "/computeMetadata/v1/instance/service-accounts/admin@hexr-dev.iam.gserviceaccount.com/token", { "metadata-flavor": "Google" }, 404],
    ["the v1beta1 tree", "/computeMetadata/v1beta1/instance", { "metadata-flavor": "Google" }, 404],
    ["an identity token", "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://example.com", { "metadata-flavor": "Google" }, 404],
  ] as const)("refuses %s in plain text, with Metadata-Flavor, no credential and no call", (_, path, headers, status) => {
    const filter = startFilter(METADATA_DOORS);
    filter.host.sharedData.write(cacheKey(METADATA_IDENTITY, "gcp_storage", "us-central1"), cacheValue(credential({ spiffeId: METADATA_IDENTITY, service: "gcp_storage", expiresAt: filter.host.clock.nowSeconds + 3600 }), filter.host.clock.nowSeconds));
    const stream = gceFetch(filter.vm, path, headers);
    expect(stream.response!.status).toBe(status);
    expect(stream.response!.headers.get("content-type")).toBe("application/text");
    expect(stream.response!.headers.getAll("metadata-flavor")).toEqual(["Google"]);
    expect(stream.response!.bodyText).not.toContain("ACCESSTOKEN");
    expect(filter.host.pendingHttpCalls()).toEqual([]);
    expect(filter.vm.failed).toBeUndefined();
  });
});

describe("the Azure managed-identity door", () => {
  it("maps the resource to its service and answers in the App Service format, from L3 then L1", () => {
    const filter = startFilter(METADATA_DOORS);
    const issued = credential({ spiffeId: METADATA_IDENTITY, service: "azure_storage", region: "eastus", expiresAt: filter.host.clock.nowSeconds + 3600 });
    const first = azureFetch(filter.vm, "api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com%2F");
    expectInjectorCall(filter.host, { spiffeId: METADATA_IDENTITY, source: "static", service: "azure_storage", region: "eastus" });
    answerL3(filter, issued);
    const expected = { access_token: JSON.parse(issued.body).credentials.access_token, expires_on: String(issued.expiresAt), resource: "https://storage.azure.com", token_type: "Bearer" };
    expect(json(first)).toEqual(expected);
    for (const resource of ["https://storage.azure.com", "https://storage.azure.com/.default"]) {
      const again = azureFetch(filter.vm, `api-version=2019-08-01&resource=${encodeURIComponent(resource)}`);
      expect(again.response!.headers.getAll("x-hexr-cache")).toEqual(["L1"]);
      expect(json(again)).toEqual(expected);
    }
  });

  it.each([
    ["no X-IDENTITY-HEADER", "api-version=2019-08-01&resource=https://storage.azure.com", { metadata: "true" }, 400, "invalid_request"],
    ["a wrong X-IDENTITY-HEADER", "api-version=2019-08-01&resource=https://storage.azure.com", { "x-identity-header": `${IDENTITY_HEADER}x` }, 401, "unauthorized_client"],
    ["a prefix of the X-IDENTITY-HEADER", "api-version=2019-08-01&resource=https://storage.azure.com", { "x-identity-header": IDENTITY_HEADER.slice(0, -1) }, 401, "unauthorized_client"],
    ["no api-version", "resource=https://storage.azure.com", undefined, 400, "invalid_request"],
    ["another api-version", "api-version=2017-09-01&resource=https://storage.azure.com", undefined, 400, "invalid_request"],
    ["no resource", "api-version=2019-08-01", undefined, 400, "invalid_request"],
    ["an unknown resource", "api-version=2019-08-01&resource=https://vault.azure.net", undefined, 400, "invalid_request"],
    ["a user-assigned identity", "api-version=2019-08-01&resource=https://storage.azure.com&client_id=0000", undefined, 400, "invalid_request"],
  ] as const)("refuses %s in the OAuth error format, with no credential and no call", (_, query, headers, status, error) => {
    const filter = startFilter(METADATA_DOORS);
    const issued = credential({ spiffeId: METADATA_IDENTITY, service: "azure_storage", region: "eastus", expiresAt: filter.host.clock.nowSeconds + 3600 });
    filter.host.sharedData.write(cacheKey(METADATA_IDENTITY, "azure_storage", "eastus"), cacheValue(issued, filter.host.clock.nowSeconds));
    const stream = azureFetch(filter.vm, query, headers);
    expect(stream.response!.status).toBe(status);
    const body = json(stream);
    expect(Object.keys(body).sort()).toEqual(["error", "error_description"]);
    expect(body.error).toBe(error);
    expectNoSecret(stream, issued);
    expect(filter.host.pendingHttpCalls()).toEqual([]);
    expect(filter.vm.failed).toBeUndefined();
  });
});

describe("one cache under every door", () => {
  it("serves the Hexr door's credential to the AWS door of the same identity without another exchange", () => {
    const filter = startFilter(AWS_DOOR);
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    const exchange = sendExchange(filter.vm, { jwtSub: AGENT.dataPipeline, headers: { authorization: `Bearer ${JWT}` } });
    answerL3(filter, issued);
    expect(exchange.response!.status).toBe(200);
    const door = awsFetch(filter.vm);
    expect(door.response!.headers.getAll("x-hexr-cache")).toEqual(["L1"]);
    expect(json(door).AccessKeyId).toBe(JSON.parse(issued.body).credentials.AccessKeyId);
  });

  it("coalesces a door's request and an exchange of the same key into one injector call", () => {
    const filter = startFilter(AWS_DOOR);
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + 3600 });
    const door = awsFetch(filter.vm);
    const exchange = sendExchange(filter.vm, { jwtSub: AGENT.dataPipeline, headers: { authorization: `Bearer ${JWT}` } });
    answerL3(filter, issued);
    expect(door.response!.status).toBe(200);
    expect(exchange.response!.status).toBe(200);
    expect(exchange.response!.bodyText).toBe(issued.body);
  });
});
