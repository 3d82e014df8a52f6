// LLM calls through the pod's sidecar: the agent holds no provider key.
//
//   const answer = await hexrLlm({ provider: "openai", model: "gpt-4o", prompt: "Generate a status report" });
//   const openai = await openaiClient();          // the `openai` package's OpenAI, pointed at the sidecar
//   (and azureOpenaiClient(), anthropicClient(): the packages' AzureOpenAI and Anthropic)
//   for await (const chunk of await openai.chat.completions.create({ model: "gpt-4o", messages, stream: true })) ...
//
// The wire (contract.json "llm", through src/contract.ts): POST {sidecar}/v1/llm/{provider}{endpoint}
// with the JWT-SVID as `authorization: Bearer`, exactly as for the vault, and the provider's own
// request body. The sidecar verifies the SVID, strips `authorization`, `x-api-key` and `api-key`,
// adds the provider's key itself (read from the vault in the caller's scope) and passes the
// provider's answer back unchanged; it meters every call by SPIFFE ID (GET /v1/llm/usage:
// llmUsage(), costTree()).
//
// The sidecar's own refusals have the contract's error body, exactly {"error": {"type", "message"}}
// with a contract type: 403 AccessDeniedError, 429 BudgetExceededError (retryAfter), 401
// AuthenticationError, 400/404/405/413 HexrError BadRequest, 5xx CredentialError. Any other error
// answer is the provider's own: ProviderError. Never in a span or an error: the prompt, the
// messages, the completion, a key or the JWT-SVID.
//
// Transport: the platform's fetch (not HexrClient.request): an LLM call needs its own headers
// (anthropic-version) and minutes, not the exchange's 10 s; the identity and the sidecar are the
// HexrClient's, as for the vault.
import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from "@opentelemetry/api";
import type { Anthropic, ClientOptions as AnthropicOptions } from "@anthropic-ai/sdk";
import type { AzureOpenAI, ClientOptions, OpenAI } from "openai";
import type { AzureClientOptions } from "openai/azure";
import { currentAgent } from "./agent.ts";
import { hexrClient, type HexrClient } from "./client.ts";
import { ERRORS, LLM } from "./contract.ts";
import { AccessDeniedError, AuthenticationError, CredentialError, HexrError, redact } from "./errors.ts";
import { isPathSegment, parseAgentSpiffeId } from "./grammar.ts";
import { INSTRUMENTATION_NAME } from "./telemetry.ts";

export type LlmProvider = keyof typeof LLM.providers;
export const LLM_PROVIDERS: readonly LlmProvider[] = Object.freeze(Object.keys(LLM.providers) as LlmProvider[]);

export const ANTHROPIC_VERSION = "2023-06-01";
export const DEFAULT_ANTHROPIC_MAX_TOKENS = 1024;
/** The latest dated GA version of the Azure OpenAI data-plane API. */
export const DEFAULT_AZURE_API_VERSION = "2024-10-21";
/** An LLM answer takes long; the openai client waits up to 10 minutes too. */
export const DEFAULT_LLM_TIMEOUT_MS = 600_000;
/**
 * The key the provider clients insist on being given. It is not a key: the sidecar strips the
 * header it travels in (authorization / x-api-key / api-key) and sets the provider's real key.
 */
export const PLACEHOLDER_KEY = "hexr-sidecar-supplies-the-key";

/** OpenTelemetry GenAI: gen_ai.system (older consumers) and gen_ai.provider.name (current). */
const GEN_AI_SYSTEM: Record<LlmProvider, string> = { openai: "openai", anthropic: "anthropic", azure_openai: "az.ai.openai" };
const GEN_AI_PROVIDER: Record<LlmProvider, string> = { openai: "openai", anthropic: "anthropic", azure_openai: "azure.ai.openai" };

// ---- errors ---------------------------------------------------------------------------------------

/** The sidecar refused the call because the caller's LLM budget is spent (429). `retryAfter`: seconds. */
export class BudgetExceededError extends CredentialError {
  readonly retryAfter: number | undefined;

  constructor(message: string, details: { retryAfter?: number; status?: number } = {}) {
    super(message, { status: details.status ?? 429 });
    this.retryAfter = details.retryAfter;
  }
}

/**
 * The provider's own error answer, passed through by the sidecar: `status`, `provider`,
 * `errorType` (OpenAI's error.type or error.code, Anthropic's error.type, Azure's error.code) and
 * the provider's `message` (redacted of anything key-shaped). Nothing of the request is in it.
 */
export class ProviderError extends HexrError {
  readonly provider: string;
  readonly errorType: string | undefined;
  readonly retryAfter: number | undefined;

  constructor(message: string, details: { provider: string; status: number; errorType?: string; retryAfter?: number }) {
    super(message, { type: "ProviderError", status: details.status });
    this.provider = details.provider;
    this.errorType = details.errorType === undefined ? undefined : redact(details.errorType);
    this.retryAfter = details.retryAfter;
  }

  override toString(): string {
    return `ProviderError [${this.provider}${this.errorType ? ` ${this.errorType}` : ""} ${this.status}]: ${this.message}`;
  }

  override toJSON() {
    return { ...super.toJSON(), provider: this.provider, errorType: this.errorType };
  }
}

function retryAfter(headers: Headers): number | undefined {
  const value = headers.get("retry-after");
  const seconds = value === null || value.trim() === "" ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // the SyntaxError quotes the body: not passed on
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The contract's error, exactly: {"error": {"type", "message"}} with a contract type. Providers'
 * errors have other shapes (OpenAI's carries param and code, Anthropic's a top-level "type", Azure's a code).
 */
function sidecarRefusal(answer: unknown): { type: string; message: string } | undefined {
  if (!isObject(answer) || Object.keys(answer).join() !== "error") return undefined;
  const error = answer.error;
  if (!isObject(error) || Object.keys(error).sort().join() !== "message,type") return undefined;
  if (!(ERRORS.types as readonly unknown[]).includes(error.type) || typeof error.message !== "string") return undefined;
  return { type: error.type as string, message: error.message.replace(/[\u0000-\u001f\u007f]/g, " ") };
}

/** The error for an answer of the LLM route other than 2xx (see the top of this file). */
export function llmErrorFromAnswer(provider: string, status: number, headers: Headers, body: string): HexrError {
  const answer = parseJson(body);
  const refusal = sidecarRefusal(answer);
  if (refusal) {
    if (status === 429) return new BudgetExceededError(refusal.message, { retryAfter: retryAfter(headers) });
    if (status === 403) return new AccessDeniedError(refusal.message, { status });
    if (refusal.type === "AuthenticationError" || status === 401) return new AuthenticationError(refusal.message, { status });
    if (refusal.type === "BadRequest") return new HexrError(refusal.message, { type: "BadRequest", status });
    return new CredentialError(refusal.message, { status });
  }
  const error = isObject(answer) ? answer.error : undefined;
  let errorType: string | undefined;
  let message: string | undefined;
  if (isObject(error)) {
    const kind = typeof error.type === "string" ? error.type : error.code;
    errorType = typeof kind === "string" ? kind : undefined;
    message = typeof error.message === "string" ? error.message : undefined;
  } else if (typeof error === "string") {
    message = error;
  }
  return new ProviderError((message ?? `${provider} answered ${status}`).replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, 300), {
    provider, status, errorType, retryAfter: retryAfter(headers),
  });
}

// ---- transport ------------------------------------------------------------------------------------

function llmUrl(client: HexrClient, path: string): string {
  return new URL(path.replace(/^\//, ""), client.sidecarUrl.href.endsWith("/") ? client.sidecarUrl : client.sidecarUrl.href + "/").href;
}

async function send(url: string, init: RequestInit, timeoutMs: number, origin: string): Promise<{ status: number; headers: Headers; body: string }> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return { status: response.status, headers: response.headers, body: await response.text() };
  } catch (error) {
    // The error's name only: a transport error never carries the request's headers or body.
    const name = (error as { name?: string }).name;
    const timedOut = name === "TimeoutError" || name === "AbortError";
    const code = (error as { cause?: { code?: string } }).cause?.code ?? name ?? "error";
    throw new CredentialError(timedOut ? "the sidecar did not answer in time" : `the sidecar at ${origin} cannot be reached (${code})`, { status: timedOut ? 504 : 503 });
  }
}

// ---- hexrLlm --------------------------------------------------------------------------------------

export interface HexrLlmOptions {
  provider: LlmProvider;
  /** The model; for azure_openai, the deployment's name. */
  model: string;
  /** Exactly one of prompt and messages: a prompt is [{ role: "user", content: prompt }]. */
  prompt?: string;
  messages?: readonly unknown[];
  /** azure_openai's api-version (default DEFAULT_AZURE_API_VERSION). */
  apiVersion?: string;
  /** Default: the process's HexrClient (hexrClient(), read at each call). */
  client?: HexrClient;
  /** Default 600 000 (10 minutes). */
  timeoutMs?: number;
  /** The rest of the provider's request body (temperature, max_tokens, system for Anthropic, ...). */
  [field: string]: unknown;
}

function invalid(message: string): HexrError {
  return new HexrError(message, { type: "BadRequest", status: 400 });
}

/** The path under the sidecar, body and extra headers of the provider's native chat request. */
function nativeRequest(
  provider: LlmProvider, model: string, messages: unknown[], rest: Record<string, unknown>, apiVersion: string | undefined,
): { path: string; body: Record<string, unknown>; headers: Record<string, string> } {
  if (provider === "openai") {
    return { path: `${LLM.path}/openai/v1/chat/completions`, body: { ...rest, model, messages }, headers: {} };
  }
  if (provider === "anthropic") {
    const body = { ...rest, model, messages, max_tokens: rest.max_tokens ?? DEFAULT_ANTHROPIC_MAX_TOKENS };
    return { path: `${LLM.path}/anthropic/v1/messages`, body, headers: { "anthropic-version": ANTHROPIC_VERSION } };
  }
  const version = apiVersion ?? DEFAULT_AZURE_API_VERSION;
  if (typeof version !== "string" || version === "") throw invalid(`apiVersion must be a string such as ${DEFAULT_AZURE_API_VERSION}`);
  if (!isPathSegment(model)) throw invalid("an Azure OpenAI model is its deployment's name: 1 to 128 characters of A-Za-z0-9._-");
  const query = new URLSearchParams({ "api-version": version });
  // The deployment fixes the model; the body names none.
  return { path: `${LLM.path}/azure_openai/openai/deployments/${model}/chat/completions?${query}`, body: { ...rest, messages }, headers: {} };
}

const isCount = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/**
 * gen_ai.usage.* from the answer: input counts every input token, cached reads and cache writes
 * included (as the sidecar's meter and the GenAI conventions count them).
 */
function usageAttributes(provider: LlmProvider, answer: Record<string, unknown>): Attributes {
  const usage = answer.usage;
  if (!isObject(usage)) return {};
  const out: Attributes = {};
  let output: unknown;
  if (provider === "anthropic") {
    const [uncached, read, written] = [usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens];
    if (isCount(uncached)) out["gen_ai.usage.input_tokens"] = uncached + (isCount(read) ? read : 0) + (isCount(written) ? written : 0);
    if (isCount(read)) out["gen_ai.usage.cache_read.input_tokens"] = read;
    if (isCount(written)) out["gen_ai.usage.cache_creation.input_tokens"] = written;
    output = usage.output_tokens;
  } else {
    if (isCount(usage.prompt_tokens)) out["gen_ai.usage.input_tokens"] = usage.prompt_tokens;
    const cached = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details.cached_tokens : undefined;
    if (isCount(cached)) out["gen_ai.usage.cache_read.input_tokens"] = cached;
    output = usage.completion_tokens;
  }
  if (isCount(output)) out["gen_ai.usage.output_tokens"] = output;
  return out;
}

function responseAttributes(provider: LlmProvider, answer: Record<string, unknown>): Attributes {
  const out: Attributes = {};
  if (typeof answer.model === "string") out["gen_ai.response.model"] = answer.model;
  if (typeof answer.id === "string") out["gen_ai.response.id"] = answer.id;
  const reasons =
    provider === "anthropic"
      ? typeof answer.stop_reason === "string" ? [answer.stop_reason] : []
      : (Array.isArray(answer.choices) ? answer.choices : []).map((c: unknown) => (isObject(c) ? c.finish_reason : undefined)).filter((r): r is string => typeof r === "string");
  if (reasons.length > 0) out["gen_ai.response.finish_reasons"] = reasons;
  return { ...out, ...usageAttributes(provider, answer) };
}

/** Request parameters the GenAI conventions record (numbers only: never content). */
const REQUEST_PARAMETERS: Record<string, string> = {
  max_tokens: "gen_ai.request.max_tokens",
  max_completion_tokens: "gen_ai.request.max_tokens",
  temperature: "gen_ai.request.temperature",
  top_p: "gen_ai.request.top_p",
};

function markError(span: Span, error: unknown): void {
  const e = error as { type?: string; status?: number };
  const type = typeof e.type === "string" ? e.type : "Error";
  span.setAttributes({ "error.type": type, ...(e.status ? { "http.status_code": e.status } : {}) });
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/**
 * One chat call to `provider` through the sidecar, with no key in the agent; resolves to the
 * provider's answer, parsed, unchanged.
 *
 * openai: chat completions {model, messages, ...rest}; anthropic: messages {model, max_tokens (1024
 * unless given), messages, ...rest} with anthropic-version 2023-06-01; azure_openai: chat
 * completions on the deployment named `model` (`apiVersion`, default DEFAULT_AZURE_API_VERSION).
 *
 * Non-streaming only: for streams use the provider client, openaiClient() (stream: true works
 * through the sidecar).
 *
 * Rejects before any request (HexrError BadRequest) for a bad provider, model or prompt; with the
 * sidecar's refusals as AccessDeniedError (403: model or provider not granted, identity revoked),
 * BudgetExceededError (429, retryAfter), AuthenticationError (no identity, 401), HexrError
 * BadRequest, CredentialError (5xx, the sidecar unreachable); with ProviderError for the
 * provider's own errors. One span per call (OpenTelemetry GenAI conventions), never with content.
 */
export async function hexrLlm(options: HexrLlmOptions): Promise<Record<string, unknown>> {
  const { provider, model, prompt, messages, apiVersion, client, timeoutMs, ...rest } = options;
  const tracer = trace.getTracer(INSTRUMENTATION_NAME);
  return tracer.startActiveSpan(typeof model === "string" ? `chat ${model}` : "chat", { kind: SpanKind.CLIENT }, async (span) => {
    try {
      if (!(LLM_PROVIDERS as readonly unknown[]).includes(provider)) throw invalid(`provider must be one of ${LLM_PROVIDERS.join(", ")}`);
      span.setAttributes({
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEM[provider],
        "gen_ai.provider.name": GEN_AI_PROVIDER[provider],
        "hexr.llm.provider": provider,
      });
      if (typeof model !== "string" || model === "") throw invalid("model must be a non-empty string");
      span.setAttribute("gen_ai.request.model", model);
      const agent = currentAgent();
      if (agent) span.setAttributes({ "hexr.agent": agent.name, "hexr.tenant": agent.tenant, "hexr.process_role": agent.role });
      if ((prompt === undefined) === (messages === undefined)) throw invalid("give exactly one of prompt and messages");
      if (prompt !== undefined && typeof prompt !== "string") throw invalid("prompt must be a string");
      if (messages !== undefined && !Array.isArray(messages)) throw invalid("messages must be an array of the provider's messages");
      if (rest.stream) throw invalid("hexrLlm does not stream: use openaiClient() for stream: true");
      const chat = prompt !== undefined ? [{ role: "user", content: prompt }] : [...(messages as unknown[])];
      for (const [key, attribute] of Object.entries(REQUEST_PARAMETERS)) {
        if (typeof rest[key] === "number") span.setAttribute(attribute, rest[key] as number);
      }
      const request = nativeRequest(provider, model, chat, rest, apiVersion);
      if (provider === "anthropic" && typeof request.body.max_tokens === "number") span.setAttribute("gen_ai.request.max_tokens", request.body.max_tokens);
      let data: string;
      try {
        data = JSON.stringify(request.body);
      } catch {
        throw invalid("the request body is not JSON-serialisable");
      }
      const sidecar = client ?? hexrClient();
      const svid = await sidecar.jwtSvid();
      span.setAttribute("hexr.spiffe_id", svid.spiffeId);
      const answer = await send(
        llmUrl(sidecar, request.path),
        { method: "POST", body: data, headers: { ...request.headers, authorization: `Bearer ${svid.token}`, "content-type": "application/json", accept: "application/json" } },
        timeoutMs ?? DEFAULT_LLM_TIMEOUT_MS,
        sidecar.sidecarUrl.origin,
      );
      span.setAttribute("http.response.status_code", answer.status);
      if (answer.status < 200 || answer.status >= 300) throw llmErrorFromAnswer(provider, answer.status, answer.headers, answer.body);
      const parsed = parseJson(answer.body);
      if (!isObject(parsed)) throw new CredentialError(`${provider}'s answer through the sidecar is not a JSON object`, { status: 502 });
      span.setAttributes(responseAttributes(provider, parsed));
      return parsed;
    } catch (error) {
      markError(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

// ---- the provider client --------------------------------------------------------------------------

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * A fetch that sets `authorization: Bearer <JWT-SVID>` on every request, the SVID read at that
 * moment (JWT-SVIDs live minutes, a client lives for hours); the client's placeholder key is
 * overwritten, and the sidecar strips any other key header.
 */
export function svidFetch(client: () => HexrClient, inner: Fetch = globalThis.fetch): Fetch {
  return async (input, init) => {
    const svid = await client().jwtSvid();
    const headers = new Headers(input instanceof Request ? input.headers : undefined);
    new Headers(init?.headers).forEach((value, name) => headers.set(name, value));
    headers.set("authorization", `Bearer ${svid.token}`);
    return inner(input, { ...init, headers });
  };
}

/** Options every provider client factory takes: the HexrClient whose identity and sidecar it uses. */
interface SidecarClientOptions {
  /** Default: the process's HexrClient (hexrClient(), read at each request; its sidecar URL at construction). */
  client?: HexrClient;
}

export type OpenAIClientOptions = Omit<ClientOptions, "apiKey" | "baseURL" | "adminAPIKey" | "workloadIdentity"> & SidecarClientOptions;

export type AzureOpenAIClientOptions = Omit<AzureClientOptions, "apiKey" | "baseURL" | "endpoint" | "azureADTokenProvider" | "adminAPIKey" | "workloadIdentity"> & SidecarClientOptions;

export type AnthropicClientOptions = Omit<AnthropicOptions, "apiKey" | "authToken" | "baseURL" | "credentials" | "config" | "profile"> & SidecarClientOptions;

/**
 * The `openai` package's OpenAI, sending every request to the sidecar's /v1/llm/openai/v1 with a
 * fresh JWT-SVID: chat completions, completions, responses and embeddings, streamed or not.
 * `openai` is an optional peer dependency, imported on first use (HexrError MissingDependency if
 * absent). Rejects with AuthenticationError at once when there is no identity. Errors of calls are
 * openai's own (PermissionDeniedError for the sidecar's 403, RateLimitError for its 429).
 */
export async function openaiClient(options: OpenAIClientOptions = {}): Promise<OpenAI> {
  const { client, fetch: inner, ...rest } = options;
  refuseSidecarOptions(rest, ["apiKey", "baseURL", "adminAPIKey", "workloadIdentity"]);
  const openai = await importPeer(() => import("openai"), "openaiClient", "openai");
  const current = await currentClient(client);
  return new openai.OpenAI({
    ...rest,
    // PLACEHOLDER_KEY: openai insists on a key; svidFetch replaces the header, the sidecar adds the real one.
    apiKey: PLACEHOLDER_KEY,
    baseURL: llmUrl(current(), `${LLM.path}/openai/v1`),
    fetch: svidFetch(current, inner),
  });
}

/**
 * The `openai` package's AzureOpenAI, sending every request to the sidecar's /v1/llm/azure_openai
 * (the sidecar knows the Azure resource and sets its Entra token): `model` (or `deployment`) is the
 * deployment. apiVersion defaults to DEFAULT_AZURE_API_VERSION. The same dependency, identity and
 * errors as openaiClient. (hexrTool("azure_openai") is the other way: straight to Azure with an
 * Entra token of the agent's.)
 */
export async function azureOpenaiClient(options: AzureOpenAIClientOptions = {}): Promise<AzureOpenAI> {
  const { client, fetch: inner, apiVersion = DEFAULT_AZURE_API_VERSION, ...rest } = options;
  refuseSidecarOptions(rest, ["apiKey", "baseURL", "endpoint", "azureADTokenProvider", "adminAPIKey", "workloadIdentity"]);
  const openai = await importPeer(() => import("openai"), "azureOpenaiClient", "openai");
  const current = await currentClient(client);
  return new openai.AzureOpenAI({
    ...rest,
    apiVersion,
    // PLACEHOLDER_KEY travels as api-key, which the sidecar strips.
    apiKey: PLACEHOLDER_KEY,
    endpoint: llmUrl(current(), `${LLM.path}/azure_openai`),
    fetch: svidFetch(current, inner),
  });
}

/**
 * The `@anthropic-ai/sdk` package's Anthropic, sending every request to the sidecar's
 * /v1/llm/anthropic with a fresh JWT-SVID: messages, streamed or not. `@anthropic-ai/sdk` is an
 * optional peer dependency (HexrError MissingDependency if absent). Errors of calls are the
 * package's own (PermissionDeniedError for the sidecar's 403, RateLimitError for its 429).
 */
export async function anthropicClient(options: AnthropicClientOptions = {}): Promise<Anthropic> {
  const { client, fetch: inner, ...rest } = options;
  refuseSidecarOptions(rest, ["apiKey", "authToken", "baseURL", "credentials", "config", "profile"]);
  const anthropic = await importPeer(() => import("@anthropic-ai/sdk"), "anthropicClient", "@anthropic-ai/sdk");
  const current = await currentClient(client);
  return new anthropic.Anthropic({
    ...rest,
    // PLACEHOLDER_KEY: the package insists on a key. It travels as x-api-key or authorization (by
    // release); svidFetch overwrites authorization, the sidecar strips x-api-key.
    apiKey: PLACEHOLDER_KEY,
    baseURL: llmUrl(current(), `${LLM.path}/anthropic`),
    fetch: svidFetch(current, inner),
  });
}

/** The key and the endpoint are the sidecar's: a caller's own would bypass it or leak a key to it. */
function refuseSidecarOptions(options: object, refused: readonly string[]): void {
  for (const name of refused) {
    if (name in options) throw invalid(`${name} is the sidecar's to set: the client goes to the sidecar, which adds the provider's key`);
  }
}

/** An optional peer dependency, or HexrError MissingDependency naming the package to install. */
async function importPeer<T>(load: () => Promise<T>, caller: string, pkg: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
      throw new HexrError(`${caller} needs the optional peer dependency ${pkg}: npm install ${pkg}`, { type: "MissingDependency" });
    }
    throw error;
  }
}

/** The HexrClient a provider client uses, read at each request; no identity rejects here, not as a retried connection error later. */
async function currentClient(client: HexrClient | undefined): Promise<() => HexrClient> {
  const current = () => client ?? hexrClient();
  await current().jwtSvid();
  return current;
}

// ---- usage ----------------------------------------------------------------------------------------

/**
 * One row of GET /v1/llm/usage (the wire's names): what one identity spent on one model.
 * input_tokens counts every input token (cached reads and cache writes included); cost in nano-USD.
 */
export interface UsageRow {
  spiffe_id: string;
  provider: string;
  model: string;
  requests: number;
  input_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  cost_nanousd: number;
}

const COUNTS = LLM.usage_counts;

function usageRow(row: unknown): UsageRow {
  if (!isObject(row) || typeof row.spiffe_id !== "string" || typeof row.provider !== "string" || typeof row.model !== "string") {
    throw new CredentialError("the sidecar's usage answer has a malformed row", { status: 502 });
  }
  const out = { spiffe_id: row.spiffe_id, provider: row.provider, model: row.model } as UsageRow;
  for (const key of COUNTS) {
    const value = row[key] ?? 0;
    if (!isCount(value)) throw new CredentialError("the sidecar's usage answer has a malformed row", { status: 502 });
    out[key] = value;
  }
  return out;
}

/**
 * The sidecar's LLM meter (GET /v1/llm/usage): every identity's rows for an admin identity, the
 * caller's own otherwise. Errors as for hexrLlm's sidecar refusals.
 */
export async function llmUsage(options: { client?: HexrClient } = {}): Promise<UsageRow[]> {
  const tracer = trace.getTracer(INSTRUMENTATION_NAME);
  return tracer.startActiveSpan("hexr.llm.usage", async (span) => {
    try {
      const client = options.client ?? hexrClient();
      const svid = await client.jwtSvid();
      span.setAttribute("hexr.spiffe_id", svid.spiffeId);
      const answer = await client.request(svid.token, "GET", LLM.usage_path.replace(/^\//, ""));
      span.setAttribute("http.response.status_code", answer.status);
      if (answer.status !== 200) {
        const error = llmErrorFromAnswer("the sidecar", answer.status, new Headers(answer.headers as Record<string, string>), answer.body);
        // Nothing beyond the sidecar answers this route.
        throw error instanceof ProviderError ? new CredentialError(`the sidecar answered ${answer.status}`, { status: answer.status >= 500 ? answer.status : 502 }) : error;
      }
      const parsed = parseJson(answer.body);
      if (!isObject(parsed) || !Array.isArray(parsed.rows)) throw new CredentialError("the sidecar's usage answer has no rows", { status: 502 });
      const rows = parsed.rows.map(usageRow);
      span.setAttribute("hexr.llm.usage.rows", rows.length);
      return rows;
    } catch (error) {
      markError(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Dollars to the tenth of a cent (half up, in integers); to the millionth under a tenth of a
 * cent, where $0.000 would say it was free.
 */
function dollars(nanousd: number): string {
  if (nanousd === 0 || nanousd >= 500_000) {
    const mills = Math.floor((nanousd + 500_000) / 1_000_000);
    return `$${Math.floor(mills / 1000)}.${String(mills % 1000).padStart(3, "0")}`;
  }
  return `$0.${String(Math.floor((nanousd + 500) / 1000)).padStart(6, "0")}`;
}

const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

/**
 * The usage as one tree per agent, role by role, a leaf per model (the seeds' cost breakdown):
 *
 *   Trace: content-crew
 *   ├── spiffe://…/content-crew/researcher
 *   │   └── gpt-4o: 1,200 input + 800 output tokens ($0.028)
 *   ...
 *
 *   Total: $0.136
 *
 * Same output as the Python SDK's cost_tree(): roles and models in the order of the rows; an
 * agent is (trust domain, tenant, name), and a title names tenant and trust domain when two share a
 * name; a model served by two providers for one role gets a leaf per provider ("model (provider)");
 * rows whose SPIFFE ID is not an agent's are under "Trace: (other identities)".
 */
export function costTree(rows: readonly UsageRow[]): string {
  type Sums = [number, number, number, number];
  const agents = new Map<string, { td: string; tenant: string; agent: string; roles: Map<string, Map<string, { model: string; provider: string; sums: Sums }>> }>();
  for (const row of rows) {
    const id = parseAgentSpiffeId(row.spiffe_id);
    const key = id ? `${id.trustDomain}\n${id.tenant}\n${id.agent}` : "";
    let entry = agents.get(key);
    if (!entry) agents.set(key, (entry = { td: id?.trustDomain ?? "", tenant: id?.tenant ?? "", agent: id?.agent ?? "", roles: new Map() }));
    const label = id ? `spiffe://…/${id.agent}/${id.role}` : row.spiffe_id;
    let models = entry.roles.get(label);
    if (!models) entry.roles.set(label, (models = new Map()));
    const modelKey = `${row.model}\n${row.provider}`;
    let leaf = models.get(modelKey);
    if (!leaf) models.set(modelKey, (leaf = { model: row.model, provider: row.provider, sums: [0, 0, 0, 0] }));
    [row.input_tokens, row.cached_input_tokens, row.output_tokens, row.cost_nanousd].forEach((value, i) => (leaf!.sums[i] += value));
  }
  const names = [...agents.values()].map((a) => a.agent).filter((name) => name !== "");
  const trees: string[] = [];
  for (const { td, tenant, agent, roles } of agents.values()) {
    const title = !agent ? "(other identities)" : names.filter((n) => n === agent).length > 1 ? `${agent} (${tenant}, ${td})` : agent;
    const lines = [`Trace: ${title}`];
    let total = 0;
    [...roles].forEach(([label, models], r) => {
      const lastRole = r === roles.size - 1;
      lines.push(`${lastRole ? "└── " : "├── "}${label}`);
      const indent = lastRole ? "    " : "│   ";
      const leaves = [...models.values()];
      leaves.forEach(({ model, provider, sums: [inputs, cached, outputs, cost] }, m) => {
        const name = leaves.filter((l) => l.model === model).length > 1 ? `${model} (${provider})` : model;
        const cachedNote = cached ? ` (${thousands(cached)} cached)` : "";
        lines.push(`${indent}${m === leaves.length - 1 ? "└── " : "├── "}${name}: ${thousands(inputs)} input${cachedNote} + ${thousands(outputs)} output tokens (${dollars(cost)})`);
        total += cost;
      });
    });
    lines.push("", `Total: ${dollars(total)}`);
    trees.push(lines.join("\n") + "\n");
  }
  return trees.join("\n");
}
