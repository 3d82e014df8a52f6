// What the LLM filter's suites share (build/llm_filter.wasm, entry assembly/llm.ts): the filter
// started with the exchange filter's configuration plus an "llm" section, an agent's call to a
// provider through the sidecar, the injector's answers with a provider credential, the provider's
// answers (JSON or SSE, in any chunks), and what was recorded: the shared-data row, the metrics
// and the hexr_llm_usage log line.

import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { CONTRACT } from "../../contract/index.ts";
import { type HostOptions, type HttpCallout, type HttpStream, LogLevel, type Properties, type ProxyWasmHost, type Vm } from "../host/index.ts";
import { AGENT, type Filter, INJECTOR, jwtMetadata, mtlsPeer, startFilter } from "./exchange.ts";

export const LLM_WASM_PATH = process.env.HOST_TEST_LLM_WASM ?? fileURLToPath(new URL("../../build/llm_filter.wasm", import.meta.url));

export type Provider = "openai" | "anthropic" | "azure_openai";

export const SERVICE: Record<Provider, string> = { openai: "llm_openai", anthropic: "llm_anthropic", azure_openai: "azure_openai" };
/** The region of each provider's credential: llm_* are global; Azure OpenAI's is the Azure default region. */
export const REGION: Record<Provider, string> = { openai: "global", anthropic: "global", azure_openai: "eastus" };

export const ADMIN = "spiffe://hexr.local/agent/acme-corp/ops/admin";

/** Prices as envoy/llm-filter.json has them (USD per million tokens). */
export const PRICES = {
  "gpt-4o": { input: 2.5, cached_input: 1.25, output: 10 },
  "gpt-4o-mini": { input: 0.15, cached_input: 0.075, output: 0.6 },
  "text-embedding-3-small": { input: 0.02, output: 0 },
  "claude-sonnet-4-5": { input: 3, cached_input: 0.3, cache_write: 3.75, output: 15 },
};

export interface LlmSection {
  providers?: Record<string, { models?: string[] }>;
  prices?: object;
  budgets?: object[];
  admin_spiffe_ids?: string[];
  max_request_bytes?: number;
  max_usage_rows?: number;
}

export const DEFAULT_LLM: LlmSection = {
  providers: {
    openai: { models: ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"] },
    anthropic: { models: ["claude-sonnet-4-5"] },
    azure_openai: {},
  },
  prices: PRICES,
  admin_spiffe_ids: [ADMIN],
};

/** The LLM filter with the exchange configuration `base` (trust domains added) and `llm` over the defaults. */
export function startLlmFilter(llm: LlmSection = {}, base: object = {}, options: Partial<HostOptions> = {}): Filter {
  return startFilter({ ...base, llm: { ...DEFAULT_LLM, ...llm } }, { wasm: LLM_WASM_PATH, ...options });
}

/** The path of a provider endpoint through the sidecar. */
export function llmPath(provider: Provider, endpoint: string): string {
  return `/v1/llm/${provider}${endpoint}`;
}

export interface LlmRequestOptions {
  provider?: Provider;
  /** The provider's endpoint; default: chat completions (Azure: deployment gpt-4o). */
  endpoint?: string;
  /** The whole :path (overrides provider and endpoint). */
  path?: string;
  /** An object is sent as JSON. */
  body?: object | string | Uint8Array;
  method?: string;
  contentType?: string | null;
  contentLength?: boolean;
  headers?: [string, string][];
  /** The verified mTLS peer (default AGENT.dataPipeline unless properties is given). */
  mtls?: string;
  properties?: Properties;
  /** Split the body at these offsets. */
  splits?: number[];
}

export const DEFAULT_ENDPOINT: Record<Provider, string> = {
  openai: "/v1/chat/completions",
  anthropic: "/v1/messages",
  azure_openai: "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
};

/** An agent's call to a provider through the sidecar: headers and body sent; returns the stream. */
export function sendLlm(vm: Vm, options: LlmRequestOptions = {}): HttpStream {
  const provider = options.provider ?? "openai";
  const path = options.path ?? llmPath(provider, options.endpoint ?? DEFAULT_ENDPOINT[provider]);
  const properties = options.properties ?? mtlsPeer(options.mtls ?? AGENT.dataPipeline);
  const stream = vm.newHttpStream({ properties });
  const body = toBytes(options.body ?? { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  const headers: [string, string][] = [
    [":method", options.method ?? "POST"],
    [":path", path],
    [":authority", "127.0.0.1:15080"],
    [":scheme", "http"],
    ["user-agent", "OpenAI/Python 1.99.0"],
  ];
  if (options.contentType !== null) headers.push(["content-type", options.contentType ?? "application/json"]);
  if (options.contentLength ?? true) headers.push(["content-length", String(body.byteLength)]);
  headers.push(...(options.headers ?? []));
  stream.sendRequestHeaders(headers, { endOfStream: body.byteLength === 0 });
  if (body.byteLength > 0) sendSplit(body, options.splits ?? [], (chunk, last) => stream.sendRequestBody(chunk, { endOfStream: last }));
  return stream;
}

/** `body` in pieces cut at `splits` (sorted, deduplicated, within the body), the last one flagged. */
export function sendSplit(body: Uint8Array, splits: readonly number[], send: (chunk: Uint8Array, last: boolean) => void): void {
  const cuts = [...new Set(splits.filter((at) => at > 0 && at < body.byteLength))].sort((a, b) => a - b);
  let from = 0;
  for (const at of [...cuts, body.byteLength]) {
    send(body.subarray(from, at), at === body.byteLength);
    from = at;
  }
}

export function toBytes(body: object | string | Uint8Array): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8");
}

// ---- the injector: a provider credential ----

let keyCounter = 0;

export interface LlmCredential {
  body: string;
  /** The API key or the Entra token. */
  secret: string;
  expiresAt: number;
}

export const FAR_EXPIRY = 4102444800;

/** The injector's answer for `provider`: {api_key, models} for llm_*, {access_token} for Azure. */
export function llmCredential(provider: Provider, options: { models?: string; spiffeId?: string; expiresAt?: number; secret?: string } = {}): LlmCredential {
  const n = ++keyCounter;
  const expiresAt = options.expiresAt ?? FAR_EXPIRY;
  const azure = provider === "azure_openai";
  const secret = options.secret ?? (azure ? `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ENTRA${n}.sig` : provider === "anthropic" ? `sk-ant-api03-TEST${n}` : `sk-proj-TEST${n}`);
  const credentials = azure ? { access_token: secret, token_type: "Bearer" } : { api_key: secret, models: options.models ?? "" };
  const body = JSON.stringify({
    service: SERVICE[provider],
    provider: azure ? "azure" : "llm",
    region: REGION[provider],
    spiffe_id: options.spiffeId ?? AGENT.dataPipeline,
    credentials,
    expiration: new Date(expiresAt * 1000).toISOString().replace(".000Z", "Z"),
    expires_at: expiresAt,
  });
  return { body, secret, expiresAt };
}

export function injectorCalls(host: ProxyWasmHost): HttpCallout[] {
  return host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster);
}

/** The one pending injector call, for `spiffeId`'s credential of `provider`; answered with `issued`. */
export function answerLlmInjector(host: ProxyWasmHost, provider: Provider, issued: LlmCredential, spiffeId: string = AGENT.dataPipeline): HttpCallout {
  const calls = injectorCalls(host);
  expect(calls.length, "pending calls to the injector").toBe(1);
  const call = calls[0];
  expect(call.path).toBe(INJECTOR.path);
  expect(call.headers.get("x-hexr-spiffe-id")).toBe(spiffeId);
  expect(JSON.parse(call.bodyText)).toEqual({ service: SERVICE[provider], region: REGION[provider] });
  call.respond({ status: 200, headers: { "content-type": "application/json", "x-hexr-expires-at": String(issued.expiresAt) }, body: issued.body });
  return call;
}

/** The credential put in L1 directly, as an earlier call (on any worker) would have: the next call is an L1 hit. */
export function seedL1(host: ProxyWasmHost, provider: Provider, issued: LlmCredential, spiffeId: string = AGENT.dataPipeline): void {
  host.sharedData.write(`cred:${spiffeId}:${SERVICE[provider]}:${REGION[provider]}`, `${issued.expiresAt},${host.clock.nowSeconds}\n${issued.body}`);
}

// ---- the provider's answer ----

export interface ProviderAnswer {
  status?: number;
  /** Default: text/event-stream when sse, else application/json. */
  contentType?: string;
  sse?: boolean;
  body: string | Uint8Array;
  /** Cut the body at these offsets. */
  splits?: number[];
  /** Deliver only this many bytes, then end as `cut` says. */
  truncateAt?: number;
  /** How a truncated answer ends: the upstream closes the body (end of stream), or the stream is reset. */
  cut?: "end" | "reset";
}

/** The provider answers the request that went on; the stream ends (and the filter records). */
export function answer(stream: HttpStream, response: ProviderAnswer): void {
  const sse = response.sse ?? false;
  stream.sendResponseHeaders({ ":status": String(response.status ?? 200), "content-type": response.contentType ?? (sse ? "text/event-stream; charset=utf-8" : "application/json") });
  let body = toBytes(response.body);
  const truncated = response.truncateAt !== undefined && response.truncateAt < body.byteLength;
  if (truncated) body = body.subarray(0, response.truncateAt);
  const reset = truncated && response.cut === "reset";
  if (body.byteLength === 0) {
    if (reset) stream.resetByClient();
    else stream.sendResponseBody(new Uint8Array(0), { endOfStream: true });
    return;
  }
  sendSplit(body, response.splits ?? [], (chunk, last) => stream.sendResponseBody(chunk, { endOfStream: last && !reset }));
  if (reset) stream.resetByClient();
}

/** An SSE stream of these events (objects are JSON; strings are sent as they are after "data: "). */
export function sse(events: (object | string | { event: string; data: object | string })[], newline = "\n"): string {
  return events
    .map((event) => {
      if (typeof event === "object" && "event" in event && "data" in event) {
        const data = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
        return `event: ${event.event}${newline}data: ${data}${newline}${newline}`;
      }
      return `data: ${typeof event === "string" ? event : JSON.stringify(event)}${newline}${newline}`;
    })
    .join("");
}

// ---- what was recorded ----

export interface Recorded {
  requests: number;
  input_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  cost_nanousd: number;
}

const ROW_FIELDS = CONTRACT.llm.usage_counts;

/** The shared-data row of (identity, provider, model), or undefined. */
export function usageRow(host: ProxyWasmHost, spiffeId: string, provider: Provider, model: string): Recorded | undefined {
  const stored = host.sharedData.read(`llm:u:${spiffeId}|${provider}|${model}`);
  if (stored === undefined || stored.value.byteLength === 0) return undefined;
  const numbers = stored.text.split(" ").map(Number);
  expect(numbers.length).toBe(ROW_FIELDS.length);
  return Object.fromEntries(ROW_FIELDS.map((field, i) => [field, numbers[i]])) as unknown as Recorded;
}

export function rowNames(host: ProxyWasmHost): string[] {
  const stored = host.sharedData.read("llm:rows");
  return stored === undefined || stored.text === "" ? [] : stored.text.split("\n");
}

export interface UsageLog {
  spiffe_id: string;
  provider: string;
  model: string;
  status: number;
  stream: boolean;
  usage_seen: boolean;
  input_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  cost_nanousd: number;
  priced: boolean;
}

/** Every hexr_llm_usage log line so far, parsed. */
export function usageLogs(host: ProxyWasmHost): UsageLog[] {
  return host.logs
    .filter((record) => record.level === LogLevel.Info && record.message.startsWith("hexr_llm_usage "))
    .map((record) => JSON.parse(record.message.slice("hexr_llm_usage ".length)) as UsageLog);
}

/** The counters of a row, as Envoy shows them (0 when never incremented). */
export function rowMetrics(host: ProxyWasmHost, spiffeId: string, provider: Provider, model: string): Record<string, number> {
  const tags = `;provider=${provider};model=${model};spiffe_id=${spiffeId}`;
  const names = ["requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "cost_nanousd"];
  return Object.fromEntries(names.map((name) => [name, host.metrics.value(`hexr_llm_${name}${tags}`) ?? 0]));
}

/** GET /v1/llm/usage as `spiffeId` (mTLS); the stream, answered. */
export function getUsage(vm: Vm, options: { spiffeId?: string; method?: string; properties?: Properties } = {}): HttpStream {
  const stream = vm.newHttpStream({ properties: options.properties ?? mtlsPeer(options.spiffeId ?? ADMIN) });
  stream.sendRequestHeaders({ ":method": options.method ?? "GET", ":path": "/v1/llm/usage", ":authority": "127.0.0.1:15080", ":scheme": "http" }, { endOfStream: true });
  return stream;
}

export interface LlmErrorType {
  type: "BadRequest" | "AuthenticationError" | "CredentialError";
}

/** The contract's JSON error with this status and type; the request did not go on with its body. */
export function expectLlmError(stream: HttpStream, status: number, type: LlmErrorType["type"]): void {
  const response = stream.response;
  expect(response, "no response reached the client").toBeDefined();
  expect(response!.source).toBe("local");
  expect(response!.status).toBe(status);
  expect(response!.headers.get("content-type")).toMatch(/^application\/json\b/);
  const body = response!.json() as { error?: { type?: unknown; message?: unknown } };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error!).sort()).toEqual(["message", "type"]);
  expect(body.error!.type).toBe(type);
  expect(String(body.error!.message).length).toBeGreaterThan(0);
  expectNothingUpstream(stream);
}

/** Nothing of the request reached the provider: no body, never the end of it. */
export function expectNothingUpstream(stream: HttpStream): void {
  const forwarded = stream.forwardedRequest;
  expect(forwarded?.ended ?? false, "the request went on towards the provider").toBe(false);
  expect(forwarded?.body.byteLength ?? 0, "request body bytes went on towards the provider").toBe(0);
}

export { AGENT, jwtMetadata, mtlsPeer };
