// Property: whatever the client sends (method, path, headers, body, identity) and whatever the
// bridge and the injector answer, the VM never traps, and the client gets either a JSON error of
// the contract or a credential issued to its own identity, or (off the exchange path) the request
// and response pass through untouched. All headers that leave the filter are well-formed.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { HttpCallout, HttpStream, ProxyWasmHost, Properties } from "./host/index.ts";
import {
  AGENT,
  BRIDGE_CLUSTER,
  CATALOG,
  cacheKey,
  cacheValue,
  credential,
  type ErrorType,
  expectNothingOnward,
  expectWellFormedHeaders,
  INJECTOR,
  jwtMetadata,
  L2_CONFIG,
  mtlsPeer,
  REQUEST_PSEUDO_HEADERS,
  RESPONSE_PSEUDO_HEADERS,
  startFilter,
} from "./support/exchange.ts";

const RUNS = 10_000;
const EXCHANGE_STATUS: Record<number, ErrorType | "credential"> = {
  200: "credential",
  400: "BadRequest",
  405: "BadRequest",
  413: "BadRequest",
  415: "BadRequest",
  401: "AuthenticationError",
  403: "CredentialError",
  502: "CredentialError",
  503: "CredentialError",
  504: "CredentialError",
};
const HEXR_HEADERS = ["x-hexr-agent", "x-hexr-identity-source", "x-hexr-region", "x-hexr-role", "x-hexr-service", "x-hexr-spiffe-id", "x-hexr-tenant"];
const SPIFFE_ID = /^spiffe:\/\/[^/:]+\/agent\/[^/:]+\/[^/:]+\/[^/:]+$/;

// ---- what the client sends ----

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz".split("");
const token = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 16 });
/** Field values Envoy's codec accepts: visible ASCII, space, tab, and any non-ASCII text. */
const fieldValue = fc.string({ unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), fc.constantFrom("\t", "é", "€", "😀")), maxLength: 40 });
const headerName = fc.oneof(
  token,
  token.map((suffix) => `x-hexr-${suffix}`),
  fc.constantFrom(...HEXR_HEADERS, "x-hexr-cache", "content-length", "content-type", "authorization", "x-jwt-payload", "x-forwarded-client-cert"),
);
const extraHeaders = fc.array(fc.tuple(headerName, fieldValue), { maxLength: 6 });

const anyText = fc.string({ unit: "binary", maxLength: 80 });
/** IDs of the right shape whose parts are anything at all. */
const templatedId = fc.tuple(anyText, anyText, anyText, anyText).map(([td, tenant, agent, role]) => `spiffe://${td}/agent/${tenant}/${agent}/${role}`);
const agent = fc.constantFrom(...Object.values(AGENT));
/** Mostly verified agents, so that most cases get past authentication. */
const identity: fc.Arbitrary<{ properties: Properties; expected: string | undefined }> = fc.oneof(
  { weight: 6, arbitrary: agent.map((id) => ({ properties: mtlsPeer(id), expected: id })) },
  { weight: 3, arbitrary: agent.map((id) => ({ properties: jwtMetadata({ sub: id }), expected: id })) },
  { weight: 2, arbitrary: fc.tuple(agent, agent).map(([mtls, jwt]) => ({ properties: { ...mtlsPeer(mtls), ...jwtMetadata({ sub: jwt }) }, expected: mtls })) },
  { weight: 1, arbitrary: fc.constant({ properties: {}, expected: undefined }) },
  { weight: 1, arbitrary: templatedId.map((id) => ({ properties: mtlsPeer(id), expected: id })) },
  { weight: 1, arbitrary: templatedId.map((id) => ({ properties: jwtMetadata({ sub: id }), expected: id })) },
  { weight: 1, arbitrary: anyText.map((id) => ({ properties: mtlsPeer(id), expected: id })) },
  { weight: 1, arbitrary: anyText.map((id) => ({ properties: jwtMetadata({ sub: id }), expected: id })) },
  { weight: 1, arbitrary: fc.integer().map((sub) => ({ properties: jwtMetadata({ sub }), expected: undefined })) },
);

const service = fc.oneof(fc.constantFrom(...CATALOG, "aws_textract", "aws_", "s3", ""), anyText);
const region = fc.oneof(fc.constantFrom("us-east-1", "eu-west-1", "US-EAST-1", "", "a".repeat(33), "us:east"), anyText, fc.integer(), fc.constant(null));
/** Mostly well-formed requests for catalog services, so that most cases reach the cache tiers. */
const body: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ service: fc.constantFrom(...CATALOG, "aws_s3", "aws_s3") }).map((request) => Buffer.from(JSON.stringify(request))) },
  { weight: 3, arbitrary: fc.record({ service, region }, { requiredKeys: ["service"] }).map((request) => Buffer.from(JSON.stringify(request))) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }).map((json) => Buffer.from(json)) },
  { weight: 1, arbitrary: anyText.map((text) => Buffer.from(text, "latin1")) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 120 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4000, max: 5000 }).map((size) => Buffer.from(`{"service":"aws_s3","pad":"${"x".repeat(size)}"}`)) },
);

/** Picks `common` most of the time and one of `rare` otherwise. */
function mostly<T>(common: T, rare: T[]): fc.Arbitrary<T> {
  return fc.oneof({ weight: 4 * rare.length, arbitrary: fc.constant(common) }, ...rare.map((value) => ({ weight: 1, arbitrary: fc.constant(value) })));
}

const request = fc.record({
  method: mostly("POST", ["GET", "PUT", "DELETE", "HEAD", "post", "PATCH"]),
  path: mostly("/exchange", ["/exchange?trace=1", "/exchange?", "/exchange/", "/exchanges", "/healthz", "/", "/EXCHANGE"]),
  contentType: mostly<string | null>("application/json", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/jsonp", "text/plain", "", null]),
  contentLength: mostly("exact", ["absent", "wrong", "huge"]),
  identity,
  headers: extraHeaders,
  body,
  chunks: fc.integer({ min: 1, max: 4 }),
});

type SentRequest = typeof request extends fc.Arbitrary<infer T> ? T : never;

// ---- what the bridge and the injector answer ----

/** "credential" is what the called service serves: the injector's JSON, or the bridge's "{expires_at}\n{json}". */
type Body = "credential" | "wrong-format" | "contract-error" | "text" | "empty";
type Answer =
  | { kind: "respond"; status: number; body: Body; contentType: string | undefined; expires: "valid" | "garbage" | "absent" }
  | { kind: "reset" }
  | { kind: "timeout" };
const answer: fc.Arbitrary<Answer> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("respond" as const),
      status: mostly(200, [204, 401, 403, 404, 500, 502, 503, 504]),
      body: mostly<Body>("credential", ["wrong-format", "contract-error", "text", "empty"]),
      contentType: mostly<string | undefined>("application/json", ["text/plain", undefined]),
      expires: mostly<"valid" | "garbage" | "absent">("valid", ["garbage", "absent"]),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "reset" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "timeout" as const }) },
);

// ---- one case ----

describe("fuzzing the exchange filter", () => {
  it(`never traps, and answers each of ${RUNS} random requests within the contract`, () => {
    const { host, vm } = startFilter({ l2: L2_CONFIG, resources: { "acme-corp/reporter": ["aws_s3"] } });
    fc.assert(
      fc.property(request, fc.array(answer, { minLength: 4, maxLength: 4 }), fc.string({ unit: "binary", maxLength: 40 }), (sent, answers, upstreamBody) => {
        seedL1(host);
        const headers = requestHeaders(sent);
        const stream = vm.newHttpStream({ properties: sent.identity.properties });
        stream.sendRequestHeaders(headers, { endOfStream: sent.body.byteLength === 0 });
        sendBody(stream, sent.body, sent.chunks);
        const isExchange = sent.path.split("?")[0] === "/exchange";
        const injectorErrors = new Map<number, string>();
        for (let round = 0; round < answers.length && host.pendingHttpCalls().length > 0; round++) {
          for (const call of host.pendingHttpCalls()) {
            if (call.cluster === INJECTOR.cluster) checkInjectorCall(call, sent.identity.expected);
            if (!call.pending) continue; // a timeout settled it
            const error = settle(host, call, answers[round]);
            if (error !== undefined && call.cluster === INJECTOR.cluster) injectorErrors.set(error.status, error.type);
          }
        }
        expect(host.pendingHttpCalls()).toEqual([]);
        if (isExchange) checkExchangeOutcome(stream, sent.identity.expected, sent.method === "HEAD", injectorErrors);
        else checkPassThrough(stream, headers, sent.body, upstreamBody);
      }),
      { numRuns: RUNS },
    );
    expect(vm.failed).toBeUndefined();
  });
});

/** L1 starts each case with the same few entries (one valid), so that most cases miss it. */
function seedL1(host: ProxyWasmHost): void {
  host.sharedData.clear();
  const expiresAt = host.clock.nowSeconds + 3600;
  host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(credential({ expiresAt })));
  host.sharedData.write(cacheKey(AGENT.reporter, "gcp_bigquery", "us-central1"), `${expiresAt}\nnot JSON at all`);
  host.sharedData.write(cacheKey(AGENT.otherTenant, "aws_s3", "us-east-1"), "garbage");
}

function requestHeaders(sent: SentRequest): [string, string][] {
  const headers: [string, string][] = [
    [":method", sent.method],
    [":path", sent.path],
    [":authority", "127.0.0.1:15080"],
    [":scheme", "http"],
  ];
  if (sent.contentType !== null) headers.push(["content-type", sent.contentType]);
  const lengths: Record<string, string | undefined> = { exact: String(sent.body.byteLength), absent: undefined, wrong: String(sent.body.byteLength + 3), huge: "99999999999999999999" };
  const contentLength = lengths[sent.contentLength];
  if (contentLength !== undefined) headers.push(["content-length", contentLength]);
  return [...headers, ...sent.headers];
}

function sendBody(stream: HttpStream, body: Uint8Array, chunks: number): void {
  if (body.byteLength === 0) return;
  const size = Math.ceil(body.byteLength / chunks);
  for (let offset = 0; offset < body.byteLength; offset += size) {
    const end = Math.min(offset + size, body.byteLength);
    stream.sendRequestBody(body.subarray(offset, end), { endOfStream: end === body.byteLength });
  }
}

/** The L3 call carries the verified identity, the validated request, and well-formed headers only. */
function checkInjectorCall(call: HttpCallout, expected: string | undefined): void {
  expectWellFormedHeaders(call.headers.rawEntries(), REQUEST_PSEUDO_HEADERS);
  expect(expected, "an identity the caller did not have reached the injector").toBeDefined();
  const hexr = call.headers.entries().filter(([name]) => name.startsWith("x-hexr-"));
  expect(hexr.map(([name]) => name).sort()).toEqual(HEXR_HEADERS);
  expect(call.headers.get("x-hexr-spiffe-id")).toBe(expected);
  expect(expected).toMatch(SPIFFE_ID);
  expect(call.headers.get("x-hexr-region")).toMatch(/^[a-z0-9-]{1,32}$/);
  expect(call.headers.get("x-hexr-service")).toMatch(/^(aws|gcp|azure)_[a-z0-9_]+$/);
  expect(JSON.parse(call.bodyText)).toEqual({ service: call.headers.get("x-hexr-service"), region: call.headers.get("x-hexr-region") });
}

/**
 * Answers a pending call as the bridge or the injector might, for the identity in the request.
 * Returns the contract error it answered with, if it did (the filter keeps its status and type).
 */
function settle(host: ProxyWasmHost, call: HttpCallout, chosen: Answer): { status: number; type: string } | undefined {
  if (chosen.kind === "reset") call.reset();
  if (chosen.kind === "timeout") host.advance(call.timeoutMs);
  if (chosen.kind !== "respond") return undefined;
  const fromBridge = call.cluster === BRIDGE_CLUSTER;
  const identity = fromBridge ? decodeURIComponent(call.path!.slice("/v1/cred/".length).split("?")[0]).split(":").slice(1, -2).join(":") : call.headers.get("x-hexr-spiffe-id")!;
  const issued = credential({ spiffeId: identity, expiresAt: host.clock.nowSeconds + 3600 });
  const errorType = chosen.status === 401 ? "AuthenticationError" : "CredentialError";
  const bodies: Record<Body, string> = {
    credential: fromBridge ? cacheValue(issued) : issued.body,
    "wrong-format": fromBridge ? issued.body : cacheValue(issued),
    "contract-error": JSON.stringify({ error: { type: errorType, message: "refused" } }),
    text: "upstream connect error",
    empty: "",
  };
  // An HTTP 204 has no body; Envoy's codecs would not deliver one.
  const body = chosen.status === 204 ? "" : bodies[chosen.body];
  const headers: Record<string, string> = {};
  if (chosen.contentType !== undefined) headers["content-type"] = chosen.contentType;
  if (chosen.expires === "valid") headers["x-hexr-expires-at"] = String(issued.expiresAt);
  if (chosen.expires === "garbage") headers["x-hexr-expires-at"] = "tomorrow";
  call.respond({ status: chosen.status, headers, body });
  return chosen.status !== 200 && chosen.body === "contract-error" && body !== "" ? { status: chosen.status, type: errorType } : undefined;
}

/**
 * Every exchange gets the filter's own answer: a credential for this caller, or a contract error
 * (with the status and type of the injector's own contract error, when it sent one).
 */
function checkExchangeOutcome(stream: HttpStream, identity: string | undefined, headRequest: boolean, injectorErrors: Map<number, string>): void {
  const response = stream.response;
  expect(response, "an exchange got no answer").toBeDefined();
  expect(response!.source).toBe("local");
  expect(response!.ended).toBe(true);
  expectWellFormedHeaders(response!.headers.rawEntries(), RESPONSE_PSEUDO_HEADERS);
  expect(response!.headers.get("content-type")).toMatch(/^application\/json\b/);
  expectNothingOnward(stream);
  const kind = EXCHANGE_STATUS[response!.status] ?? injectorErrors.get(response!.status);
  expect(kind, `status ${response!.status}`).toBeDefined();
  if (headRequest) return expect(response!.body.byteLength, "a body in the answer to HEAD").toBe(0);
  if (kind === "credential") {
    expect(["L1", "L2", "L3"]).toContain(response!.headers.get("x-hexr-cache"));
    expect(response!.headers.getAll("x-hexr-cache").length).toBe(1);
    // The body is the issuer's, byte for byte; when it names an identity, that is the caller's.
    const issuedTo = spiffeIdIn(response!.bodyText);
    if (issuedTo !== undefined) expect(issuedTo, "a credential went to another identity").toBe(identity);
    return;
  }
  const error = response!.json() as { error: { type: string; message: string } };
  expect(Object.keys(error)).toEqual(["error"]);
  expect(error.error.type).toBe(kind);
  expect(typeof error.error.message).toBe("string");
}

/** Off the exchange path, both directions pass through byte for byte. */
function checkPassThrough(stream: HttpStream, headers: [string, string][], body: Uint8Array, upstreamBody: string): void {
  const forwarded = stream.forwardedRequest;
  expect(forwarded?.ended).toBe(true);
  expect(forwarded!.headers.entries()).toEqual(headers.map(([name, value]) => [name.toLowerCase(), value]));
  expect(Buffer.from(forwarded!.body).equals(Buffer.from(body))).toBe(true);
  expectWellFormedHeaders(forwarded!.headers.rawEntries(), REQUEST_PSEUDO_HEADERS);
  const responseHeaders: [string, string][] = [[":status", "200"], ["x-hexr-cache", "L9"]];
  stream.sendResponseHeaders(responseHeaders);
  stream.sendResponseBody(Buffer.from(upstreamBody, "latin1"));
  expect(stream.response!.headers.entries()).toEqual(responseHeaders);
  expect(Buffer.from(stream.response!.body).equals(Buffer.from(upstreamBody, "latin1"))).toBe(true);
}

function spiffeIdIn(body: string): unknown {
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === "object" && parsed !== null && "spiffe_id" in parsed ? parsed.spiffe_id : undefined;
  } catch {
    return undefined;
  }
}
