// Property: whatever a client sends to a stock-SDK door (method, path, query, headers, identity) and
// whatever the injector answers (including answers that lack the door's fields or carry escapes),
// the VM never traps and every answer is in the door's own format: a credential of the caller's
// own identity, or the protocol's error. Headers that leave the filter are well-formed.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { HttpStream, ProxyWasmHost } from "./host/index.ts";
import {
  AGENT,
  expectWellFormedHeaders,
  INJECTOR,
  jwtMetadata,
  RESPONSE_PSEUDO_HEADERS,
  startFilter,
} from "./support/exchange.ts";

const RUNS = 3_000;
const AWS_PATH = "/v1/aws/credentials";
const AZURE_PATH = "/metadata/identity/oauth2/token";
const IDENTITY_HEADER = "0123456789abcdef0123";
const METADATA_IDENTITY = AGENT.reporter;

const anyText = fc.string({ unit: "binary", maxLength: 40 });
const queryText = fc.oneof(
  fc.constantFrom("", "service=aws_s3", "service=aws_dynamodb&region=eu-west-1", "region=%zz", "service=%", "recursive=true",
    "api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com%2F", "api-version=2019-08-01&resource=https://cosmos.azure.com",
    "api-version=2019-08-01", "resource=https://storage.azure.com", "api-version=2019-08-01&resource=https://storage.azure.com&client_id=x",
    "scopes=a,b", "audience=https://x", "&&&", "=", "service=aws_s3&service=aws_sqs"),
  fc.string({ unit: fc.constantFrom(..."abcdeforsvintu=&%2F3A+.-_/:".split("")), maxLength: 60 }),
);
const path = fc.tuple(
  fc.constantFrom(AWS_PATH, AZURE_PATH, "/", "/computeMetadata/v1", "/computeMetadata/v1/", "/computeMetadata/v1/instance",
    "/computeMetadata/v1/instance/service-accounts/default/token", "/computeMetadata/v1/instance/service-accounts/default/",
    "/computeMetadata/v1/instance/service-accounts/x@y/token", "/computeMetadata/v1/project/project-id",
    "/computeMetadata/v1/universe/universe-domain", "/computeMetadata/v1/instance/service-accounts/default/identity",
    "/computeMetadata/" + "a".repeat(300)),
  fc.option(queryText),
).map(([p, q]) => (q === null ? p : `${p}?${q}`));
const headers = fc.record({
  method: fc.constantFrom("GET", "GET", "GET", "POST", "HEAD", "PUT"),
  flavor: fc.option(fc.constantFrom("Google", "google", "Google,Google", "")),
  identityHeader: fc.option(fc.oneof(fc.constant(IDENTITY_HEADER), fc.constant(IDENTITY_HEADER + "x"), anyText.map((t) => t.replace(/[^\x20-\x7e]/g, "")))),
  authorization: fc.option(fc.constantFrom("eyJ.a.b", "Bearer eyJ.a.b", "eyJ.a.b,eyJ.c.d")),
});
const caller = fc.oneof(
  fc.constantFrom(...Object.values(AGENT)).map((sub) => jwtMetadata({ sub, iss: "spiffe://hexr.local" })),
  fc.constant({}),
  anyText.map((sub) => jwtMetadata({ sub })),
);
/** What the injector answers a miss with: well-formed credentials, or bodies a door cannot use. */
const injectorBody = fc.oneof(
  fc.constant('{"credentials":{"AccessKeyId":"AK","SecretAccessKey":"S\\/K","SessionToken":"T\\"x"},"expiration":"2100-01-01T00:00:00Z","expires_at":4102444800}'),
  fc.constant('{"credentials":{"access_token":"ya29.x\\u0041","token_type":"Bearer"},"expires_at":4102444800}'),
  fc.constant('{"credentials":{}}'),
  fc.constant('{"access_token":"unterminated'),
  fc.json({ maxDepth: 2 }),
);

function injectorCalls(host: ProxyWasmHost) {
  return host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster);
}

function checkFormat(stream: HttpStream, requestPath: string, method: string): void {
  const response = stream.response!;
  expectWellFormedHeaders(response.headers.entries(), RESPONSE_PSEUDO_HEADERS);
  // An answer to HEAD has no body (the host, as Envoy, drops it): a refusal all the same.
  if (method === "HEAD") {
    expect(response.status).toBe(405);
    return;
  }
  const spiffe = response.headers.getAll("x-hexr-spiffe-id");
  if (requestPath.startsWith(AWS_PATH)) {
    const body = response.json() as Record<string, unknown>;
    const keys = Object.keys(body).sort();
    if (response.status === 200) expect(keys).toEqual(["AccessKeyId", "Expiration", "SecretAccessKey", "Token"]);
    else expect(keys).toEqual(["code", "message"]);
  } else if (requestPath.startsWith(AZURE_PATH)) {
    const body = response.json() as Record<string, unknown>;
    const keys = Object.keys(body).sort();
    if (response.status === 200) expect(keys).toEqual(["access_token", "expires_on", "resource", "token_type"]);
    else expect(keys).toEqual(["error", "error_description"]);
    if (response.status === 200) expect(spiffe).toEqual([METADATA_IDENTITY]);
  } else {
    expect(response.headers.getAll("metadata-flavor")).toEqual(["Google"]);
    if (response.status === 200 && response.headers.get("x-hexr-cache")) expect(spiffe).toEqual([METADATA_IDENTITY]);
  }
}

describe("the stock-SDK doors under arbitrary input", () => {
  it("never trap, and answer in each protocol's own format", () => {
    // One VM per listener kind, reused across runs: state carried from one case to the next is part of the test.
    const agentListener = startFilter({ aws_container: { path: AWS_PATH } });
    const metadataListener = startFilter({
      identity_sources: ["static"],
      static_spiffe_id: METADATA_IDENTITY,
      gce_metadata: { project_id: "hexr-dev" },
      azure_managed_identity: { path: AZURE_PATH, identity_header: IDENTITY_HEADER },
    });
    fc.assert(
      fc.property(path, headers, caller, injectorBody, (requestPath, sent, properties, answer) => {
        const filter = requestPath.startsWith(AWS_PATH) ? agentListener : metadataListener;
        const request: Record<string, string> = { ":method": sent.method, ":path": requestPath, ":authority": "127.0.0.1", ":scheme": "http" };
        if (sent.flavor !== null) request["metadata-flavor"] = sent.flavor;
        if (sent.identityHeader !== null) request["x-identity-header"] = sent.identityHeader;
        if (sent.authorization !== null) request.authorization = sent.authorization;
        const stream = filter.vm.newHttpStream({ properties });
        stream.sendRequestHeaders(request, { endOfStream: true });
        for (const call of injectorCalls(filter.host)) {
          call.respond({ status: 200, headers: { "content-type": "application/json", "x-hexr-expires-at": "4102444800" }, body: answer });
        }
        expect(filter.vm.failed).toBeUndefined();
        if (stream.response === undefined) {
          // Only a request no door serves may pass: the metadata listener passes nothing else.
          expect(requestPath.startsWith(AWS_PATH) || requestPath.startsWith(AZURE_PATH) || requestPath === "/" || requestPath.startsWith("/?") || requestPath.startsWith("/computeMetadata/")).toBe(false);
          return;
        }
        checkFormat(stream, requestPath, sent.method);
      }),
      { numRuns: RUNS },
    );
  });
});
