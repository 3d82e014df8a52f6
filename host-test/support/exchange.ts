// What the suites share: the filter under test started in host-test, agents' requests, the
// Credential Injector's answers, and the checks of docs/filter-contract.md that several suites make.

import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import {
  type HostOptions,
  type HttpCallout,
  type HttpStream,
  type Properties,
  ProxyWasmHost,
  type Vm,
} from "../host/index.ts";

/** The release build by default (what ships); HOST_TEST_WASM may name another, e.g. the debug build. */
export const WASM_PATH = process.env.HOST_TEST_WASM ?? fileURLToPath(new URL("../../build/exchange_filter.wasm", import.meta.url));

export const BRIDGE_CLUSTER = "hexr_bridge";
export const L2_CONFIG = { cluster: BRIDGE_CLUSTER, authority: "hexr-bridge", timeout_ms: 50 };
/** The contract's default `injector`. */
export const INJECTOR = { cluster: "hexr_injector", authority: "credential-injector", path: "/exchange", timeoutMs: 5000 };

export const AGENT = {
  dataPipeline: "spiffe://hexr.local/agent/acme-corp/data-pipeline/main",
  dataPipelineWorker: "spiffe://hexr.local/agent/acme-corp/data-pipeline/worker",
  reporter: "spiffe://hexr.local/agent/acme-corp/reporter/main",
  otherTenant: "spiffe://hexr.local/agent/globex/data-pipeline/main",
  otherTrustDomain: "spiffe://partner.example/agent/acme-corp/data-pipeline/main",
} as const;

/** The 13 services of the catalog (contract/contract.json). */
export const CATALOG = [
  "aws_s3", "aws_ec2", "aws_dynamodb", "aws_sqs", "aws_lambda", "aws_bedrock",
  "gcp_bigquery", "gcp_storage", "gcp_vertexai", "gcp_pubsub",
  "azure_storage", "azure_cosmosdb", "azure_openai",
] as const;

const JWT_NAMESPACE = "envoy.filters.http.jwt_authn";
const JWT_PAYLOAD_KEY = "jwt_payload";

export interface Filter {
  host: ProxyWasmHost;
  vm: Vm;
}

/**
 * The filter with `config` as its plugin configuration, as envoy/sidecar.yaml runs it: Envoy's
 * defaults (allow_on_headers_stop_iteration false), the injector's and the bridge's clusters.
 */
export function startFilter(config: object | string = {}, options: Partial<HostOptions> = {}): Filter {
  const host = new ProxyWasmHost({
    wasm: WASM_PATH,
    pluginConfiguration: withTrustDomains(config),
    clusters: [INJECTOR.cluster, BRIDGE_CLUSTER],
    ...options,
  });
  const vm = host.startVm();
  expect(vm.configured, `configure failed: ${host.logMessages().join(" | ")}`).toBe(true);
  return { host, vm };
}

/**
 * The filter accepts no trust domain unless configured: suites that do not name any get the trust
 * domains of this file's identities and of the shared vectors.
 */
export const TEST_TRUST_DOMAINS = ["hexr.local", "partner.example", "example.org", "td-1.example_x"];

export function withTrustDomains(config: object | string): object | string {
  if (typeof config === "string" || "trust_domains" in config) return config;
  return { ...config, trust_domains: TEST_TRUST_DOMAINS };
}

/** A JWT-SVID's `exp` far in the future (2100-01-01), for payloads that do not name one. */
export const FAR_FUTURE_EXP = 4102444800;

/** Dynamic metadata as jwt_authn writes it with payload_in_metadata; `exp` is added unless given (or given as undefined). */
export function jwtMetadata(payload: Record<string, unknown>, namespace = JWT_NAMESPACE, key = JWT_PAYLOAD_KEY): Properties {
  const claims = "exp" in payload ? Object.fromEntries(Object.entries(payload).filter(([, value]) => value !== undefined)) : { ...payload, exp: FAR_FUTURE_EXP };
  return { metadata: { filter_metadata: { [namespace]: { [key]: claims as Properties } } } };
}

export function mtlsPeer(uriSan: string): Properties {
  return { connection: { uri_san_peer_certificate: uriSan } };
}

export interface ExchangeOptions {
  /** An object is sent as JSON. Default {"service":"aws_s3"}. */
  body?: object | string | Uint8Array;
  method?: string;
  path?: string;
  /** null sends no content-type. */
  contentType?: string | null;
  /** Extra request headers (e.g. spoofed x-hexr-*). */
  headers?: Record<string, string>;
  /** Send content-length (default true). */
  contentLength?: boolean;
  /** The verified mTLS peer's URI SAN. Default AGENT.dataPipeline unless jwtSub or properties is given. */
  mtls?: string;
  /** The verified JWT-SVID's sub claim. */
  jwtSub?: string;
  /** Replaces the identity properties entirely. */
  properties?: Properties;
  /** Split the body into this many chunks. */
  chunks?: number;
}

/** An agent's POST /exchange, headers and body sent; returns the stream. */
export function sendExchange(vm: Vm, options: ExchangeOptions = {}): HttpStream {
  const stream = vm.newHttpStream({ properties: identityProperties(options) });
  const body = bodyBytes(options.body ?? { service: "aws_s3" });
  const headers: Record<string, string> = {
    ":method": options.method ?? "POST",
    ":path": options.path ?? "/exchange",
    ":authority": "127.0.0.1:15080",
    ":scheme": "http",
    "user-agent": "hexr-sdk/1.0",
    "x-request-id": "7d1e5bd4-0b8e-4a57-9d0c-2f1b5b8f1a11",
  };
  if (options.contentType !== null) headers["content-type"] = options.contentType ?? "application/json";
  if (options.contentLength ?? true) headers["content-length"] = String(body.byteLength);
  Object.assign(headers, options.headers);
  stream.sendRequestHeaders(headers, { endOfStream: body.byteLength === 0 });
  if (body.byteLength > 0) sendInChunks(stream, body, options.chunks ?? 1);
  return stream;
}

function identityProperties(options: ExchangeOptions): Properties {
  if (options.properties !== undefined) return options.properties;
  if (options.jwtSub !== undefined && options.mtls === undefined) return jwtMetadata({ sub: options.jwtSub, iss: "spiffe://hexr.local" });
  const mtls = mtlsPeer(options.mtls ?? AGENT.dataPipeline);
  return options.jwtSub === undefined ? mtls : { ...mtls, ...jwtMetadata({ sub: options.jwtSub }) };
}

function bodyBytes(body: object | string | Uint8Array): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8");
}

function sendInChunks(stream: HttpStream, body: Uint8Array, chunks: number): void {
  const size = Math.ceil(body.byteLength / chunks);
  for (let offset = 0; offset < body.byteLength; offset += size) {
    const end = Math.min(offset + size, body.byteLength);
    stream.sendRequestBody(body.subarray(offset, end), { endOfStream: end === body.byteLength });
  }
}

// ---- the Credential Injector (L3), reached by the filter's own HTTP call ----

let secretCounter = 0;

export interface Credential {
  /** The injector's body, byte for byte. */
  body: string;
  expiresAt: number;
  /** Every secret value in the body (for checks that they never leak). */
  secrets: string[];
}

/** An injector 200 body for `spiffeId`, with fresh secret values. */
export function credential(options: { spiffeId?: string; service?: string; region?: string; expiresAt: number }): Credential {
  const n = ++secretCounter;
  const service = options.service ?? "aws_s3";
  const provider = service.slice(0, service.indexOf("_"));
  const aws = { AccessKeyId: `ASIAHEXRTEST${String(n).padStart(8, "0")}`, SecretAccessKey: `wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET${n}`, SessionToken: `FwoGZXIvYXdzEBAaDSESSIONTOKEN${n}xyz==` };
  const bearer = { access_token: `ya29.ACCESSTOKEN${n}SECRET`, token_type: "Bearer" };
  const credentials = provider === "aws" ? aws : bearer;
  const body = JSON.stringify({
    service,
    provider,
    region: options.region ?? "us-east-1",
    spiffe_id: options.spiffeId ?? AGENT.dataPipeline,
    credentials,
    expiration: new Date(options.expiresAt * 1000).toISOString().replace(".000Z", "Z"),
    expires_at: options.expiresAt,
  });
  const secrets = provider === "aws" ? [aws.AccessKeyId, aws.SecretAccessKey, aws.SessionToken] : [bearer.access_token];
  return { body, expiresAt: options.expiresAt, secrets };
}

export interface ExpectedL3Call {
  spiffeId: string;
  source: "mtls" | "jwt" | "static";
  service: string;
  region: string;
  /** The agent's authorization header, which must travel with the call; undefined = none. */
  authorization?: string;
}

/** The filter's pending L3 call to the injector, checked against the contract; returns it. */
export function expectInjectorCall(host: ProxyWasmHost, expected: ExpectedL3Call, injector = INJECTOR): HttpCallout {
  const calls = host.pendingHttpCalls().filter((call) => call.cluster === injector.cluster);
  expect(calls.length, "pending calls to the injector").toBe(1);
  const call = calls[0];
  expect(call.method).toBe("POST");
  expect(call.path).toBe(injector.path);
  expect(call.authority).toBe(injector.authority);
  expect(call.timeoutMs).toBe(injector.timeoutMs);
  const headers = call.headers;
  expect(headers.get("content-type")).toMatch(/^application\/json\b/);
  const [, , trustDomain, , tenant, agent, role] = expected.spiffeId.split("/");
  expect(trustDomain).toBeTruthy();
  expect(headers.getAll("x-hexr-spiffe-id")).toEqual([expected.spiffeId]);
  expect(headers.getAll("x-hexr-tenant")).toEqual([tenant]);
  expect(headers.getAll("x-hexr-agent")).toEqual([agent]);
  expect(headers.getAll("x-hexr-role")).toEqual([role]);
  expect(headers.getAll("x-hexr-identity-source")).toEqual([expected.source]);
  expect(headers.getAll("x-hexr-service")).toEqual([expected.service]);
  expect(headers.getAll("x-hexr-region")).toEqual([expected.region]);
  const hexrHeaders = headers.entries().filter(([name]) => name.startsWith("x-hexr-")).map(([name]) => name).sort();
  expect(hexrHeaders).toEqual(["x-hexr-agent", "x-hexr-identity-source", "x-hexr-region", "x-hexr-role", "x-hexr-service", "x-hexr-spiffe-id", "x-hexr-tenant"]);
  expect(headers.getAll("authorization")).toEqual(expected.authorization === undefined ? [] : [expected.authorization]);
  expect(JSON.parse(call.bodyText)).toEqual({ service: expected.service, region: expected.region });
  return call;
}

export interface InjectorAnswer {
  status?: number;
  body?: string;
  /** null sends no content-type. */
  contentType?: string | null;
  /** x-hexr-expires-at; omitted when undefined. */
  expiresHeader?: string;
  headers?: Record<string, string>;
}

/** The injector (or Envoy on its behalf) answers the filter's L3 call. */
export function answerInjector(call: HttpCallout, answer: InjectorAnswer): void {
  const headers: Record<string, string> = {};
  if (answer.contentType !== null) headers["content-type"] = answer.contentType ?? "application/json";
  if (answer.expiresHeader !== undefined) headers["x-hexr-expires-at"] = answer.expiresHeader;
  const body = answer.body ?? "";
  headers["content-length"] = String(Buffer.byteLength(body));
  Object.assign(headers, answer.headers);
  call.respond({ status: answer.status ?? 200, headers, body });
}

/** The injector's 200 with the credential, expiry in x-hexr-expires-at as well as the body. */
export function answerWithCredential(call: HttpCallout, issued: Credential): void {
  answerInjector(call, { body: issued.body, expiresHeader: String(issued.expiresAt) });
}

/** A whole L3 round: the request from `options`, the injector's call answered with `issued`. */
export function exchangeViaInjector(filter: Filter, issued: Credential, options: ExchangeOptions = {}): HttpStream {
  const stream = sendExchange(filter.vm, options);
  const calls = filter.host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster);
  expect(calls.length, "pending calls to the injector").toBe(1);
  answerWithCredential(calls[0], issued);
  return stream;
}

// ---- cache tiers ----

export function cacheKey(spiffeId: string, service: string, region: string): string {
  return `cred:${spiffeId}:${service}:${region}`;
}

/**
 * The L1/L2 value: "{expires_at},{stored_at}\n{body}", which the filter always writes; without
 * `storedAt`, the older "{expires_at}\n{body}" that it still reads.
 */
export function cacheValue(issued: Credential, storedAt?: number): string {
  return storedAt === undefined ? `${issued.expiresAt}\n${issued.body}` : `${issued.expiresAt},${storedAt}\n${issued.body}`;
}

/**
 * The bridge has no entry (404), grants the cross-pod lock (201), and still has no entry when the
 * lock holder looks once more: the filter goes on to the injector.
 */
export function missL2(host: ProxyWasmHost): void {
  answerL2Lookup(host, 404);
  const [lock] = host.pendingHttpCalls().filter((call) => call.cluster === BRIDGE_CLUSTER && call.method === "PUT" && call.path!.startsWith("/v1/locks/"));
  expect(lock, "a pending cross-pod lock request").toBeDefined();
  lock.respond({ status: 201 });
  answerL2Lookup(host, 404);
}

function answerL2Lookup(host: ProxyWasmHost, status: number): void {
  const [lookup] = host.pendingHttpCalls().filter((call) => call.cluster === BRIDGE_CLUSTER && call.method === "GET");
  expect(lookup, "a pending L2 lookup").toBeDefined();
  lookup.respond({ status });
}

/** Credential entries in L1 that still hold a value (the ABI cannot delete; eviction empties). */
export function credentialEntries(host: ProxyWasmHost): string[] {
  return host.sharedData.keys().filter((key) => key.startsWith("cred:") && host.sharedData.read(key)!.value.byteLength > 0);
}

// ---- contract checks ----

export type ErrorType = "BadRequest" | "AuthenticationError" | "CredentialError";

/** The response is the contract's JSON error with this status and type, and nothing else. */
export function expectContractError(stream: HttpStream, status: number, type: ErrorType): void {
  const response = stream.response;
  expect(response, "no response reached the client").toBeDefined();
  expect(response!.status).toBe(status);
  expect(response!.headers.get("content-type")).toMatch(/^application\/json\b/);
  const body = response!.json() as { error?: { type?: unknown; message?: unknown } };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error!).sort()).toEqual(["message", "type"]);
  expect(body.error!.type).toBe(type);
  expect(typeof body.error!.message).toBe("string");
  expect((body.error!.message as string).length).toBeGreaterThan(0);
  expectNothingOnward(stream);
}

/** A cached credential served by the filter itself from tier L1 or L2. */
export function expectCachedReply(stream: HttpStream, tier: "L1" | "L2", issued: Credential): void {
  const response = stream.response;
  expect(response, "no response reached the client").toBeDefined();
  expect(response!.source).toBe("local");
  expect(response!.status).toBe(200);
  expect(response!.bodyText).toBe(issued.body);
  expect(response!.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(response!.headers.getAll("x-hexr-cache")).toEqual([tier]);
  expect(response!.headers.getAll("x-hexr-expires-at")).toEqual([String(issued.expiresAt)]);
  expectNothingOnward(stream);
}

/** The filter's answer with the injector's 200 (L3): its body byte for byte; `expiresAt` null = no usable expiry. */
export function expectInjectorReply(stream: HttpStream, issued: Credential, expiresAt: number | null = issued.expiresAt): void {
  const response = stream.response;
  expect(response, "no response reached the client").toBeDefined();
  expect(response!.source).toBe("local");
  expect(response!.status).toBe(200);
  expect(response!.bodyText).toBe(issued.body);
  expect(response!.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(response!.headers.getAll("x-hexr-cache")).toEqual(["L3"]);
  expect(response!.headers.getAll("x-hexr-expires-at")).toEqual(expiresAt === null ? [] : [String(expiresAt)]);
  expectNothingOnward(stream);
}

/**
 * An exchange never travels on through the router: the filter answers every one itself. (Its
 * headers may pass the filter, to the buffer filter that holds them; its body never does.)
 */
export function expectNothingOnward(stream: HttpStream): void {
  const forwarded = stream.forwardedRequest;
  expect(forwarded?.ended ?? false, "the exchange went on towards the router").toBe(false);
  expect(forwarded?.body.byteLength ?? 0, "exchange body bytes went on towards the router").toBe(0);
}

/** RFC 9110 field names (lower-case, as Envoy keeps them) and values without NUL, CR or LF. */
export function expectWellFormedHeaders(headers: readonly (readonly [string, string])[], pseudo: readonly string[]): void {
  for (const [name, value] of headers) {
    if (name.startsWith(":")) expect(pseudo, `unexpected pseudo-header ${name}`).toContain(name);
    else expect(name, "header name").toMatch(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
    expect(/[\0\r\n]/.test(value), `header ${name} has a NUL, CR or LF in ${JSON.stringify(value)}`).toBe(false);
  }
}

export const REQUEST_PSEUDO_HEADERS = [":method", ":path", ":authority", ":scheme"] as const;
export const RESPONSE_PSEUDO_HEADERS = [":status"] as const;

/**
 * A counter as Envoy shows it once the filter has handed its counts over: the filter adds them up
 * in the VM and flushes them on its tick, every metrics_flush_ms (default 1 s).
 */
export function flushedCounter(host: ProxyWasmHost, name: string): number | undefined {
  host.advance(1000);
  return host.metrics.value(name);
}
