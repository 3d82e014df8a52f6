// A loopback stand-in for the LLM providers behind the sidecar's LLM egress route: OpenAI (chat
// completions, legacy completions, responses, embeddings), Anthropic (messages) and Azure OpenAI
// (deployments), each on its own wire protocol. No provider can be reached from here, and what the
// route does is wire work (add the provider key, read token usage from answers, streamed ones
// included), so the emulator is exact where the wire is: auth headers, error bodies, JSON answers
// and server-sent-event framing, as the official clients (openai for Node and Python, anthropic for
// Python; support/llm-provider.test.ts runs them) parse them. The text it answers is invented.
//
// Token usage is deterministic rather than a tokenizer's, so a test can predict it (expectedUsage):
//   input   ceil(characters of prompt text / 4): message and part text, prompts, instructions,
//           embedding inputs (a token id counts as one token); tool definitions are not counted.
//   output  REPLY, one token per piece, cut short by the request's token limit (finish_reason
//           "length", stop_reason "max_tokens", status "incomplete" as the providers do).
//   cache   OpenAI and Azure (chat and responses) with a `prompt_cache_key`: half the input is
//           reported cached, inside prompt_tokens as OpenAI counts it. Anthropic: the text up to the
//           last block marked `cache_control` (system, then messages) is the cached prefix, half of it
//           read from the cache and the rest written to it, outside input_tokens as Anthropic counts
//           them. The providers' minimum cacheable lengths (1024 tokens and up) are not modelled.
// RecordedCall.usage holds it normalised: input_tokens counts every input token, cached or not.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";

export interface LlmProviderOptions {
  /** API keys the emulator accepts, per provider family. */
  keys: { openai?: string[]; anthropic?: string[]; azure_openai?: string[] };
  /** Azure OpenAI also accepts Entra bearer tokens: return true to accept one (the test checks it came from the stack's Azure token path). */
  acceptsAzureToken?: (token: string) => boolean;
  /** Models each family serves; others get the provider's own "model not found" error. Azure: deployment names. Defaults: DEFAULT_MODELS. */
  models?: { openai?: string[]; anthropic?: string[]; azure_openai?: string[] };
  /** 0 / undefined = a free port. */
  port?: number;
  /** The address to listen on; default 127.0.0.1 (docker-compose's emulator: 0.0.0.0, on the compose network only). */
  host?: string;
}

export interface RecordedCall {
  family: "openai" | "anthropic" | "azure_openai";
  method: string;
  path: string;
  /** The query string without its `?` (Azure's `api-version=...`). */
  query: string;
  /**
   * Every request header as received (lower-case names): a header sent more than once is an array
   * of its values, so a second Authorization cannot hide behind the first. Tests check which key
   * arrived and that no agent credential did.
   */
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON request body; the raw text if it was not JSON, undefined if empty. */
  body: unknown;
  /** Whether the request asked for a stream (`"stream": true`). */
  stream: boolean;
  status: number;
  /**
   * The usage the emulator reported in its answer, normalised; undefined when the answer carried
   * none that reads as usage (an error, a stream without `include_usage`, or a fault that cut,
   * broke or scrambled it).
   */
  usage?: { input_tokens: number; cached_tokens: number; cache_write_tokens: number; output_tokens: number };
  /** The fault this answer was given, if any. */
  fault?: Fault;
}

/**
 * A deliberate flaw in the next answered request's answer. Streamed faults cut at the event that
 * carries the final usage (chat's usage chunk, response.completed, Anthropic's message_delta).
 */
export type Fault =
  /** Close the connection before the final usage: streamed, mid-stream; JSON, mid-body (full Content-Length). */
  | "truncate-before-usage"
  /** Send the final usage, then close abruptly: no later events, no [DONE]; JSON, no closing brace. */
  | "truncate-after-usage"
  /** Non-streamed only: 200 and a body that is not valid JSON, though it holds a plausible "usage" fragment. */
  | "malformed-json"
  /** Streamed only: comments, field-less lines, broken JSON, a 70 KiB data line, interleaved with the normal events. */
  | "garbage-sse"
  /** Usage with absurd values (1e30, -5, "12", 2^64, 1e400, nested junk) in place of every usage object. */
  | "huge-usage"
  /** One byte per write, setImmediate between: every SSE line (and JSON body) split across TCP chunks. */
  | "split-bytes"
  /** The provider's own 500 error. */
  | "error-500";

export interface LlmProvider {
  /** http://127.0.0.1:PORT (http://HOST:PORT with another `host` than 0.0.0.0) */
  url: string;
  port: number;
  calls: RecordedCall[];
  /**
   * The next request (any family) that would be answered 200 gets this fault; faults queue in
   * order. Requests refused on auth or validation do not use one up.
   */
  injectFault(fault: Fault): void;
  stop(): Promise<void>;
}

type Family = RecordedCall["family"];
type Usage = NonNullable<RecordedCall["usage"]>;
type Json = Record<string, unknown>;
type Endpoint = "chat" | "completions" | "responses" | "embeddings" | "messages";

export const DEFAULT_MODELS: Record<Family, string[]> = {
  openai: [
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o4-mini",
    "gpt-3.5-turbo-instruct", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
  ],
  anthropic: [
    "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-haiku-4-5-20251001",
    "claude-opus-4-1", "claude-opus-4-1-20250805",
  ],
  azure_openai: ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"],
};

// ---- routes ----------------------------------------------------------------------------------

interface Route {
  family: Family;
  /** Undefined: no such route on this provider. */
  endpoint?: Endpoint;
  /** Azure: the deployment named in the path. */
  deployment?: string;
}

const OPENAI_PATHS: Record<string, Endpoint> = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completions",
  "/v1/responses": "responses",
  "/v1/embeddings": "embeddings",
};
const AZURE_PATH = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/;
const AZURE_ENDPOINTS: Record<string, Endpoint> = { "chat/completions": "chat", completions: "completions", embeddings: "embeddings" };

/**
 * Which provider a path belongs to. OpenAI and Anthropic share /v1, so an unknown /v1 path goes to
 * Anthropic when the request carries `anthropic-version` (every Anthropic client sends it).
 */
function routeOf(path: string, anthropicVersion: boolean): Route {
  const azure = AZURE_PATH.exec(path);
  if (azure) return { family: "azure_openai", endpoint: AZURE_ENDPOINTS[azure[2]], deployment: decodeURIComponent(azure[1]) };
  if (path.startsWith("/openai/")) return { family: "azure_openai" };
  if (path === "/v1/messages") return { family: "anthropic", endpoint: "messages" };
  if (Object.hasOwn(OPENAI_PATHS, path)) return { family: "openai", endpoint: OPENAI_PATHS[path] };
  return { family: anthropicVersion ? "anthropic" : "openai" };
}

// ---- usage -----------------------------------------------------------------------------------

const CHARS_PER_TOKEN = 4;
/** The answer to everything, one token per piece. */
const REPLY = ["Hello", " from", " the", " loopback", " provider", ":", " this", " reply", " is", " twelve", " tokens", "."];
/** OpenAI's legacy completions stop at 16 tokens unless told otherwise. */
const LEGACY_COMPLETIONS_MAX_TOKENS = 16;

/** The usage the emulator will report for a request body (deterministic), so tests can predict it; undefined where the answer reports none. */
export function expectedUsage(family: RecordedCall["family"], path: string, body: unknown): RecordedCall["usage"] {
  const route = routeOf(path.split("?")[0], family === "anthropic");
  if (route.family !== family || !route.endpoint || !isObject(body) || !reportsUsage(route.endpoint, body)) return undefined;
  return usageFor(route.endpoint, body);
}

/** Streamed chat and legacy completions carry usage only when `stream_options.include_usage` asks. */
function reportsUsage(endpoint: Endpoint, body: Json): boolean {
  if (body.stream !== true || (endpoint !== "chat" && endpoint !== "completions")) return true;
  return streamOptions(body).include_usage === true;
}

function usageFor(endpoint: Endpoint, body: Json): Usage {
  const input = tokensOf(inputChars(endpoint, body));
  const output = endpoint === "embeddings" ? 0 : replyPieces(endpoint, body).length;
  if (endpoint === "messages") {
    const cacheable = Math.min(input, tokensOf(cachedPrefixChars(body)));
    const read = Math.floor(cacheable / 2);
    return { input_tokens: input, cached_tokens: read, cache_write_tokens: cacheable - read, output_tokens: output };
  }
  const caches = (endpoint === "chat" || endpoint === "responses") && typeof body.prompt_cache_key === "string" && body.prompt_cache_key !== "";
  return { input_tokens: input, cached_tokens: caches ? Math.floor(input / 2) : 0, cache_write_tokens: 0, output_tokens: output };
}

const tokensOf = (chars: number) => Math.ceil(chars / CHARS_PER_TOKEN);

function inputChars(endpoint: Endpoint, body: Json): number {
  switch (endpoint) {
    case "chat": return promptChars(body.messages);
    case "completions": return promptChars(body.prompt);
    case "responses": return promptChars(body.instructions) + promptChars(body.input);
    case "embeddings": return promptChars(body.input);
    case "messages": return promptChars(body.system) + promptChars(body.messages);
  }
}

/** Characters of prompt text: strings, and the `content` and `text` of messages and parts; a token id counts as one token. */
function promptChars(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (typeof value === "number") return CHARS_PER_TOKEN;
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + promptChars(item), 0);
  if (isObject(value)) return promptChars(value.content) + promptChars(value.text);
  return 0;
}

/** Anthropic: characters up to and including the last block marked `cache_control`, system first, then messages. */
function cachedPrefixChars(body: Json): number {
  let total = 0;
  let prefix = 0;
  for (const block of anthropicBlocks(body)) {
    total += promptChars(block);
    if (isObject(block) && isObject(block.cache_control)) prefix = total;
  }
  return prefix;
}

/** Anthropic writes to the 1-hour cache when the last breakpoint asks for it, else the 5-minute one. */
function cacheTtl(body: Json): "5m" | "1h" {
  const breakpoints = anthropicBlocks(body).flatMap((block) => (isObject(block) && isObject(block.cache_control) ? [block.cache_control] : []));
  return breakpoints.at(-1)?.ttl === "1h" ? "1h" : "5m";
}

/** The prompt's blocks in the order Anthropic caches them (a plain string is one block). */
function anthropicBlocks(body: Json): unknown[] {
  const blocksOf = (content: unknown): unknown[] => (Array.isArray(content) ? content : [content]);
  const messages = Array.isArray(body.messages) ? body.messages : [];
  return [...blocksOf(body.system), ...messages.flatMap((message) => blocksOf(isObject(message) ? message.content : undefined))];
}

/** The reply's pieces within the request's token limit. */
function replyPieces(endpoint: Endpoint, body: Json): string[] {
  const limit = tokenLimit(endpoint, body);
  return limit === undefined ? REPLY : REPLY.slice(0, Math.max(0, limit));
}

function tokenLimit(endpoint: Endpoint, body: Json): number | undefined {
  switch (endpoint) {
    case "chat": return finite(body.max_completion_tokens) ?? finite(body.max_tokens);
    case "completions": return finite(body.max_tokens) ?? LEGACY_COMPLETIONS_MAX_TOKENS;
    case "responses": return finite(body.max_output_tokens);
    case "messages": return finite(body.max_tokens);
    case "embeddings": return undefined;
  }
}

// Each provider's usage object, from the normalised counts.

function chatWireUsage(usage: Usage, endpoint: Endpoint): Json {
  const counts = { prompt_tokens: usage.input_tokens, completion_tokens: usage.output_tokens, total_tokens: usage.input_tokens + usage.output_tokens };
  if (endpoint === "completions") return counts;
  return {
    ...counts,
    prompt_tokens_details: { cached_tokens: usage.cached_tokens, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function responsesWireUsage(usage: Usage): Json {
  return {
    input_tokens: usage.input_tokens,
    input_tokens_details: { cached_tokens: usage.cached_tokens, cache_write_tokens: usage.cache_write_tokens },
    output_tokens: usage.output_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.input_tokens + usage.output_tokens,
  };
}

/** Anthropic's input_tokens are the tokens after the last cache breakpoint only. */
function anthropicWireUsage(usage: Usage, ttl: "5m" | "1h", outputTokens: number): Json {
  return {
    input_tokens: usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens,
    cache_creation_input_tokens: usage.cache_write_tokens,
    cache_read_input_tokens: usage.cached_tokens,
    cache_creation: {
      ephemeral_5m_input_tokens: ttl === "5m" ? usage.cache_write_tokens : 0,
      ephemeral_1h_input_tokens: ttl === "1h" ? usage.cache_write_tokens : 0,
    },
    output_tokens: outputTokens,
    service_tier: "standard",
  };
}

/** What the huge-usage fault puts in place of each usage object: valid JSON, nonsense values, the provider's own field names. */
const ABSURD_USAGE: Record<Endpoint, string> = {
  chat: '{"prompt_tokens":1e30,"completion_tokens":-5,"total_tokens":"12","prompt_tokens_details":{"cached_tokens":{"nested":[1,{"deeper":null}]},"audio_tokens":18446744073709551616},"completion_tokens_details":{"reasoning_tokens":1e400}}',
  completions: '{"prompt_tokens":1e30,"completion_tokens":-5,"total_tokens":"12","nested":{"junk":[18446744073709551616]}}',
  responses: '{"input_tokens":1e30,"input_tokens_details":{"cached_tokens":"12","cache_write_tokens":-5},"output_tokens":18446744073709551616,"output_tokens_details":{"reasoning_tokens":{"nested":[1e400]}},"total_tokens":-1.5}',
  embeddings: '{"prompt_tokens":1e30,"total_tokens":"12","nested":{"junk":[-5]}}',
  messages: '{"input_tokens":1e30,"cache_creation_input_tokens":-5,"cache_read_input_tokens":"12","cache_creation":{"nested":[1e400]},"output_tokens":18446744073709551616,"service_tier":{"junk":true}}',
};

// ---- answers ---------------------------------------------------------------------------------

/** An admitted request: who asked, for what, of which model (Azure: the deployment). */
interface Ask {
  family: Family;
  endpoint: Endpoint;
  model: string;
  body: Json;
  stream: boolean;
}

/** An answer before faults: a JSON body, or the events of a stream. */
type Payload =
  | { kind: "json"; body: Json; usage: Json }
  | { kind: "sse"; events: SseEvent[] };

interface SseEvent {
  /** The `event:` line; OpenAI's chat and legacy completions streams have none. */
  name?: string;
  data: Json | "[DONE]";
  /** The usage object inside `data`, where this event reports usage. */
  usage?: Json;
}

const SYSTEM_FINGERPRINT = "fp_e1a2b3c4d5";
const SAFE = { filtered: false, severity: "safe" };
/** Azure's content filter verdicts, on every choice it returns. */
const CONTENT_FILTER_RESULTS = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const PROMPT_FILTER_RESULTS = [{ prompt_index: 0, content_filter_results: { ...CONTENT_FILTER_RESULTS, jailbreak: { filtered: false, detected: false } } }];

function payloadFor(ask: Ask, usage: Usage): Payload {
  switch (ask.endpoint) {
    case "chat":
    case "completions": return openAiStylePayload(ask, usage);
    case "responses": return responsesPayload(ask, usage);
    case "embeddings": return embeddingsPayload(ask, usage);
    case "messages": return messagesPayload(ask, usage);
  }
}

/** How chat completions and legacy completions differ: the object names and the choice's shape. */
interface ChoiceShape {
  idPrefix: string;
  object: string;
  chunkObject: string;
  whole(text: string, finish: string): Json;
  /** The first streamed choice (chat announces the role), if any. */
  opening?: Json;
  piece(text: string): Json;
  closing(finish: string): Json;
}

const CHOICE_SHAPES: Record<"chat" | "completions", ChoiceShape> = {
  chat: {
    idPrefix: "chatcmpl-",
    object: "chat.completion",
    chunkObject: "chat.completion.chunk",
    whole: (text, finish) => ({ index: 0, message: { role: "assistant", content: text, refusal: null, annotations: [] }, logprobs: null, finish_reason: finish }),
    opening: { index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null },
    piece: (text) => ({ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }),
    closing: (finish) => ({ index: 0, delta: {}, logprobs: null, finish_reason: finish }),
  },
  completions: {
    idPrefix: "cmpl-",
    object: "text_completion",
    chunkObject: "text_completion",
    whole: (text, finish) => ({ text, index: 0, logprobs: null, finish_reason: finish }),
    piece: (text) => ({ text, index: 0, logprobs: null, finish_reason: null }),
    closing: (finish) => ({ text: "", index: 0, logprobs: null, finish_reason: finish }),
  },
};

/**
 * Chat and legacy completions, OpenAI's and Azure's. Azure adds its content-filter verdicts, and
 * its streams open with a chunk that has no choices, only the prompt's verdicts (a usage reader
 * must not take an empty `choices` for the usage chunk). With `include_usage`, every chunk carries
 * `"usage": null` and one last choice-less chunk carries the usage, before `data: [DONE]`.
 */
function openAiStylePayload(ask: Ask, usage: Usage): Payload {
  const shape = CHOICE_SHAPES[ask.endpoint === "chat" ? "chat" : "completions"];
  const azure = ask.family === "azure_openai";
  const pieces = replyPieces(ask.endpoint, ask.body);
  const finish = pieces.length < REPLY.length ? "length" : "stop";
  const wire = chatWireUsage(usage, ask.endpoint);
  const head = { id: `${shape.idPrefix}${randomId(29)}`, created: nowSeconds(), model: ask.model };
  const filtered = (choice: Json, verdicts: Json) => (azure ? { ...choice, content_filter_results: verdicts } : choice);
  const tier = azure ? {} : { service_tier: "default" };
  if (!ask.stream) {
    return {
      kind: "json",
      usage: wire,
      body: {
        ...head,
        object: shape.object,
        choices: [filtered(shape.whole(pieces.join(""), finish), CONTENT_FILTER_RESULTS)],
        usage: wire,
        ...(azure ? { prompt_filter_results: PROMPT_FILTER_RESULTS } : tier),
        system_fingerprint: SYSTEM_FINGERPRINT,
      },
    };
  }
  const includeUsage = streamOptions(ask.body).include_usage === true;
  // Stream obfuscation (on by default, chat only) pads each delta chunk against size side channels.
  const obfuscate = ask.endpoint === "chat" && !azure && streamOptions(ask.body).include_obfuscation !== false;
  const chunk = (choices: Json[], text: string): Json => ({
    ...head,
    object: shape.chunkObject,
    ...tier,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices,
    ...(includeUsage ? { usage: null } : {}),
    ...(obfuscate ? { obfuscation: padding(text) } : {}),
  });
  const usageChunk = { ...head, object: shape.chunkObject, ...tier, system_fingerprint: SYSTEM_FINGERPRINT, choices: [], usage: wire };
  const events: SseEvent[] = [];
  if (azure) events.push({ data: { choices: [], created: 0, id: "", model: "", object: "", prompt_filter_results: PROMPT_FILTER_RESULTS } });
  if (shape.opening) events.push({ data: chunk([filtered(shape.opening, {})], "") });
  for (const piece of pieces) events.push({ data: chunk([filtered(shape.piece(piece), CONTENT_FILTER_RESULTS)], piece) });
  events.push({ data: chunk([filtered(shape.closing(finish), {})], "") });
  if (includeUsage) events.push({ data: usageChunk, usage: wire });
  events.push({ data: "[DONE]" });
  return { kind: "sse", events };
}

/**
 * The responses API. The answer echoes the request's settings (instructions, tools, metadata,
 * text, ...) as the real one does. Its stream names every event (`event:` line and `type`),
 * numbers them (`sequence_number`), and ends with response.completed (or response.incomplete when
 * max_output_tokens cut the reply), whose `response.usage` is the only usage; no [DONE].
 */
function responsesPayload(ask: Ask, usage: Usage): Payload {
  const pieces = replyPieces(ask.endpoint, ask.body);
  const text = pieces.join("");
  const status = pieces.length < REPLY.length ? "incomplete" : "completed";
  const wire = responsesWireUsage(usage);
  const id = `resp_${randomHex(24)}`;
  const createdAt = nowSeconds();
  const itemId = `msg_${randomHex(24)}`;
  const part = { type: "output_text", annotations: [], logprobs: [], text };
  const item = { id: itemId, type: "message", status, content: [part], role: "assistant" };
  const response = (state: string, output: Json[], reported: Json | null) => responseObject(ask, { id, createdAt, status: state, output, usage: reported });
  if (!ask.stream) return { kind: "json", body: response(status, [item], wire), usage: wire };

  const obfuscate = streamOptions(ask.body).include_obfuscation !== false;
  let sequence = 0;
  const event = (type: string, fields: Json, reported?: Json): SseEvent => ({ name: type, data: { type, sequence_number: sequence++, ...fields }, usage: reported });
  const where = { item_id: itemId, output_index: 0, content_index: 0 };
  return {
    kind: "sse",
    events: [
      event("response.created", { response: response("in_progress", [], null) }),
      event("response.in_progress", { response: response("in_progress", [], null) }),
      event("response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress", content: [] } }),
      event("response.content_part.added", { ...where, part: { ...part, text: "" } }),
      ...pieces.map((delta) => event("response.output_text.delta", { ...where, delta, logprobs: [], ...(obfuscate ? { obfuscation: padding(delta) } : {}) })),
      event("response.output_text.done", { ...where, text, logprobs: [] }),
      event("response.content_part.done", { ...where, part }),
      event("response.output_item.done", { output_index: 0, item }),
      event(`response.${status}`, { response: response(status, [item], wire) }, wire),
    ],
  };
}

function responseObject(ask: Ask, state: { id: string; createdAt: number; status: string; output: Json[]; usage: Json | null }): Json {
  const body = ask.body;
  const echo = (name: string, otherwise: unknown) => body[name] ?? otherwise;
  return {
    id: state.id,
    object: "response",
    created_at: state.createdAt,
    status: state.status,
    background: false,
    completed_at: state.status === "completed" ? nowSeconds() : null,
    error: null,
    incomplete_details: state.status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: echo("instructions", null),
    max_output_tokens: echo("max_output_tokens", null),
    max_tool_calls: echo("max_tool_calls", null),
    model: ask.model,
    output: state.output,
    parallel_tool_calls: echo("parallel_tool_calls", true),
    previous_response_id: echo("previous_response_id", null),
    prompt_cache_key: echo("prompt_cache_key", null),
    reasoning: echo("reasoning", { effort: null, summary: null }),
    safety_identifier: echo("safety_identifier", null),
    service_tier: "default",
    store: echo("store", true),
    temperature: echo("temperature", 1),
    text: echo("text", { format: { type: "text" }, verbosity: "medium" }),
    tool_choice: echo("tool_choice", "auto"),
    tools: echo("tools", []),
    top_logprobs: echo("top_logprobs", 0),
    top_p: echo("top_p", 1),
    truncation: echo("truncation", "disabled"),
    usage: state.usage,
    user: echo("user", null),
    metadata: echo("metadata", {}),
  };
}

/** Embeddings, one per input; as little-endian float32 in base64 when asked (the npm client's default). */
function embeddingsPayload(ask: Ask, usage: Usage): Payload {
  const base64 = ask.body.encoding_format === "base64";
  const dimensions = finite(ask.body.dimensions) ?? (ask.model.endsWith("-large") ? 3072 : 1536);
  const wire = { prompt_tokens: usage.input_tokens, total_tokens: usage.input_tokens };
  const data = embeddingInputs(ask.body.input).map((input, index) => {
    const vector = embeddingOf(JSON.stringify(input), dimensions);
    return { object: "embedding", index, embedding: base64 ? float32Base64(vector) : vector };
  });
  return { kind: "json", usage: wire, body: { object: "list", data, model: ask.model, usage: wire } };
}

/** A string, or a token array, is one input; an array of them is several. */
function embeddingInputs(input: unknown): unknown[] {
  if (!Array.isArray(input) || input.every((item) => typeof item === "number")) return [input];
  return input;
}

/** A unit vector that depends only on the input, rounded to float32 so both encodings agree. */
function embeddingOf(seed: string, dimensions: number): number[] {
  let hash = 2166136261;
  for (let i = 0; i < seed.length; i++) hash = Math.imul(hash ^ seed.charCodeAt(i), 16777619) >>> 0;
  const raw = Array.from({ length: dimensions }, (_, i) => Math.sin(hash + i * 0.618));
  const norm = Math.sqrt(raw.reduce((sum, value) => sum + value * value, 0));
  return raw.map((value) => Math.fround(value / norm));
}

function float32Base64(vector: number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString("base64");
}

/**
 * Anthropic's messages. The stream: message_start (usage with the input and cache counts, output
 * so far), content_block_start, ping, text deltas, content_block_stop, message_delta (the
 * cumulative output_tokens), message_stop; every event named on an `event:` line.
 */
function messagesPayload(ask: Ask, usage: Usage): Payload {
  const pieces = replyPieces(ask.endpoint, ask.body);
  const stopReason = pieces.length < REPLY.length ? "max_tokens" : "end_turn";
  const ttl = cacheTtl(ask.body);
  const id = `msg_01${randomId(22)}`;
  const message = (content: Json[], stop: string | null, reported: Json) => ({
    id, type: "message", role: "assistant", model: ask.model, content, stop_reason: stop, stop_sequence: null, usage: reported,
  });
  if (!ask.stream) {
    const wire = anthropicWireUsage(usage, ttl, usage.output_tokens);
    return { kind: "json", body: message([{ type: "text", text: pieces.join("") }], stopReason, wire), usage: wire };
  }
  const started = anthropicWireUsage(usage, ttl, Math.min(1, usage.output_tokens));
  const final = { output_tokens: usage.output_tokens };
  const event = (type: string, fields: Json, reported?: Json): SseEvent => ({ name: type, data: { type, ...fields }, usage: reported });
  return {
    kind: "sse",
    events: [
      event("message_start", { message: message([], null, started) }, started),
      event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      event("ping", {}),
      ...pieces.map((text) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text } })),
      event("content_block_stop", { index: 0 }),
      event("message_delta", { delta: { stop_reason: stopReason, stop_sequence: null }, usage: final }, final),
      event("message_stop", {}),
    ],
  };
}

// ---- errors ----------------------------------------------------------------------------------

/** A request refused before any answer: status and the provider's own error body. */
interface Refusal {
  status: number;
  body: Json;
}

const openAiError = (status: number, message: string, code: string | null = null, param: string | null = null, type = "invalid_request_error"): Refusal => ({
  status,
  body: { error: { message, type, param, code } },
});
const anthropicError = (status: number, type: string, message: string): Refusal => ({ status, body: { type: "error", error: { type, message } } });
const azureError = (status: number, code: string, message: string): Refusal => ({ status, body: { error: { code, message } } });

const OPENAI_BAD_JSON =
  "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)";
const AZURE_NOT_FOUND = azureError(404, "404", "Resource not found");

function serverError(family: Family, message?: string): Refusal {
  if (family === "anthropic") return anthropicError(500, "api_error", message ?? "Internal server error");
  // Azure relays the model service's own error, in OpenAI's format.
  return openAiError(500, message ?? "The server had an error while processing your request. Sorry about that!", null, null, "server_error");
}

/** Which body parameter is missing, of those the endpoint cannot do without. */
function missingParameter(endpoint: Endpoint, body: Json): string | undefined {
  const required: Record<Endpoint, string[]> = {
    chat: ["messages"],
    completions: [],
    responses: [],
    embeddings: ["input"],
    messages: ["model", "max_tokens", "messages"],
  };
  return required[endpoint].find((name) => body[name] === undefined);
}

// ---- admission: auth, route, body, model -----------------------------------------------------

interface Admission {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: unknown;
  route: Route;
}

interface Catalog {
  keys: Record<Family, string[]>;
  models: Record<Family, string[]>;
  acceptsAzureToken: (token: string) => boolean;
}

function admit(request: Admission, catalog: Catalog): Ask | Refusal {
  switch (request.route.family) {
    case "openai": return admitOpenAi(request, catalog);
    case "anthropic": return admitAnthropic(request, catalog);
    case "azure_openai": return admitAzure(request, catalog);
  }
}

function admitOpenAi(request: Admission, catalog: Catalog): Ask | Refusal {
  const key = bearerToken(request.headers.authorization);
  if (key === undefined) {
    return openAiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
  }
  // The real message shows a masked key; this one shows none, so a test can assert no key leaks.
  if (!catalog.keys.openai.includes(key)) return openAiError(401, "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_api_key");
  const { endpoint } = request.route;
  if (!endpoint || request.method !== "POST") return openAiError(404, `Invalid URL (${request.method} ${request.path})`);
  return admitOpenAiBody(request, endpoint, "openai", catalog);
}

/** The body checks OpenAI and Azure share; Azure's model is the deployment in the path. */
function admitOpenAiBody(request: Admission, endpoint: Endpoint, family: Family, catalog: Catalog): Ask | Refusal {
  const body = request.body;
  if (!isObject(body)) return openAiError(400, OPENAI_BAD_JSON);
  const model = family === "azure_openai" ? request.route.deployment : body.model;
  if (typeof model !== "string" || model === "") return openAiError(400, "you must provide a model parameter");
  const missing = missingParameter(endpoint, body);
  if (missing) return openAiError(400, `Missing required parameter: '${missing}'.`, "missing_required_parameter", missing);
  if (!catalog.models[family].includes(model)) {
    if (family === "azure_openai") {
      return azureError(404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.");
    }
    return openAiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, "model_not_found");
  }
  return { family, endpoint, model, body, stream: body.stream === true };
}

/**
 * Anthropic takes the key in `x-api-key`, or as `Authorization: Bearer`, which is how the official
 * Python client (anthropic 2.x) sends an api_key.
 */
function admitAnthropic(request: Admission, catalog: Catalog): Ask | Refusal {
  const key = single(request.headers["x-api-key"]) ?? bearerToken(request.headers.authorization);
  if (key === undefined) return anthropicError(401, "authentication_error", "x-api-key header is required");
  if (!catalog.keys.anthropic.includes(key)) return anthropicError(401, "authentication_error", "invalid x-api-key");
  if (request.headers["anthropic-version"] === undefined) return anthropicError(400, "invalid_request_error", "anthropic-version: header is required");
  if (request.route.endpoint !== "messages" || request.method !== "POST") return anthropicError(404, "not_found_error", "Not Found");
  const body = request.body;
  if (!isObject(body)) return anthropicError(400, "invalid_request_error", "There was an issue with the request body: it is not valid JSON.");
  const missing = missingParameter("messages", body);
  if (missing) return anthropicError(400, "invalid_request_error", `${missing}: Field required`);
  if (typeof body.model !== "string" || !catalog.models.anthropic.includes(body.model)) return anthropicError(404, "not_found_error", `model: ${String(body.model)}`);
  return { family: "anthropic", endpoint: "messages", model: body.model, body, stream: body.stream === true };
}

/** Azure answers an unknown path, or one without a well-formed api-version, as a missing resource. */
function admitAzure(request: Admission, catalog: Catalog): Ask | Refusal {
  const { endpoint } = request.route;
  if (!endpoint || request.method !== "POST" || !/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(request.query.get("api-version") ?? "")) return AZURE_NOT_FOUND;
  return azureAuthRefusal(request.headers, catalog) ?? admitOpenAiBody(request, endpoint, "azure_openai", catalog);
}

/** An `api-key` header decides alone; without one, an Entra token as `Authorization: Bearer`. */
function azureAuthRefusal(headers: IncomingMessage["headers"], catalog: Catalog): Refusal | undefined {
  const keyDenied = azureError(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.");
  const apiKey = single(headers["api-key"]);
  if (apiKey !== undefined) return catalog.keys.azure_openai.includes(apiKey) ? undefined : keyDenied;
  const token = bearerToken(headers.authorization);
  if (token === undefined) return keyDenied;
  if (catalog.acceptsAzureToken(token)) return undefined;
  return azureError(401, "401", "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.");
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return match ? match[1] : undefined;
}

const single = (header: string | string[] | undefined) => (Array.isArray(header) ? header[0] : header);

// ---- the wire: faults, framing, writing ------------------------------------------------------

/** Bytes to write, how, and whether to drop the connection after them. */
interface Delivery {
  status: number;
  headers: Record<string, string>;
  pieces: string[];
  drop: boolean;
  byteByByte: boolean;
}

/** What garbage-sse interleaves: each a complete SSE block a careful reader skips, or a trap for a careless one. */
const JUNK_BLOCKS = [
  ": a comment, which every SSE reader ignores\n\n",
  'data: {"usage":{"prompt_tokens":99,"completion_tokens":\n\n',
  `data: {"padding":"${"x".repeat(70 * 1024)}"}\n\n`,
  "event: junk\nid: 42\nretry: soon\nthis line has no colon\ndata: not json at all\n\n",
  ":\n\n",
];

/** A delivery's bytes and manner, before its status and headers. */
type Wire = Pick<Delivery, "pieces" | "drop" | "byteByByte">;

function jsonDelivery(body: Json, usage: Json, endpoint: Endpoint, fault: Fault | undefined): Wire & { length: number } {
  const text = fault === "malformed-json" ? malformed(body) : serialise(body, usage, fault === "huge-usage" ? ABSURD_USAGE[endpoint] : undefined);
  const length = Buffer.byteLength(text);
  const byteByByte = fault === "split-bytes";
  if (fault === "truncate-before-usage" || fault === "truncate-after-usage") {
    const [start, end] = usageSpan(text, usage);
    return { pieces: [text.slice(0, fault === "truncate-before-usage" ? start : end)], drop: true, byteByByte, length };
  }
  return { pieces: [text], drop: false, byteByByte, length };
}

function sseDelivery(events: SseEvent[], endpoint: Endpoint, fault: Fault | undefined): Wire {
  const absurd = fault === "huge-usage" ? ABSURD_USAGE[endpoint] : undefined;
  const blocks = events.map((event) => sseBlock(event, absurd));
  // Where the final usage is; a stream without usage is cut before its last event instead.
  let usageAt = blocks.length - 1;
  for (let i = 0; i < events.length; i++) if (events[i].usage) usageAt = i;
  switch (fault) {
    case "truncate-before-usage": return { pieces: blocks.slice(0, usageAt), drop: true, byteByByte: false };
    case "truncate-after-usage": return { pieces: blocks.slice(0, usageAt + 1), drop: true, byteByByte: false };
    case "garbage-sse": return { pieces: blocks.flatMap((block, i) => (i < JUNK_BLOCKS.length ? [block, JUNK_BLOCKS[i]] : [block])), drop: false, byteByByte: false };
    default: return { pieces: blocks, drop: false, byteByByte: fault === "split-bytes" };
  }
}

function sseBlock(event: SseEvent, absurdUsage: string | undefined): string {
  const data = event.data === "[DONE]" ? "[DONE]" : serialise(event.data, event.usage, absurdUsage);
  return `${event.name ? `event: ${event.name}\n` : ""}data: ${data}\n\n`;
}

/** JSON text, with the usage object swapped for an absurd one when asked. */
function serialise(data: Json, usage: Json | undefined, absurdUsage: string | undefined): string {
  const text = JSON.stringify(data);
  if (!usage || absurdUsage === undefined) return text;
  return text.replace(`"usage":${JSON.stringify(usage)}`, () => `"usage":${absurdUsage}`);
}

/** Where `"usage":{...}` starts and ends in the serialised answer. */
function usageSpan(text: string, usage: Json): [number, number] {
  const needle = `"usage":${JSON.stringify(usage)}`;
  const start = text.indexOf(needle);
  return [start, start + needle.length];
}

/** The whole answer, usage included, then an object that never closes: complete over HTTP, broken as JSON. */
function malformed(body: Json): string {
  return `${JSON.stringify(body).slice(0, -1)},"usage":{"prompt_tokens":`;
}

const JSON_HEADERS = { "content-type": "application/json" };
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };

function newRequestId(family: Family): string {
  if (family === "anthropic") return `req_011C${randomId(20)}`;
  if (family === "azure_openai") return randomUUID();
  return `req_${randomHex(16)}`;
}

function providerHeaders(family: Family, requestId: string): Record<string, string> {
  if (family === "anthropic") return { "request-id": requestId };
  if (family === "azure_openai") return { "apim-request-id": requestId, "x-request-id": requestId, "x-ms-region": "East US" };
  return { "x-request-id": requestId, "openai-version": "2020-10-01", "openai-processing-ms": "1" };
}

/** Anthropic names the request in its error bodies too. */
function refusalDelivery(family: Family, refusal: Refusal, requestId: string): Delivery {
  const body = family === "anthropic" ? { ...refusal.body, request_id: requestId } : refusal.body;
  const text = JSON.stringify(body);
  return {
    status: refusal.status,
    headers: { ...JSON_HEADERS, "content-length": String(Buffer.byteLength(text)), ...providerHeaders(family, requestId) },
    pieces: [text],
    drop: false,
    byteByByte: false,
  };
}

/** A fault that needs the other kind of answer is a mistake in the test: say so loudly. */
function faultMismatch(family: Family, fault: Fault | undefined, payload: Payload): Refusal | undefined {
  const needs = fault === "garbage-sse" ? "sse" : fault === "malformed-json" ? "json" : undefined;
  if (!needs || needs === payload.kind) return undefined;
  return serverError(family, `llm-provider emulator: the ${fault} fault needs a ${needs === "sse" ? "streamed" : "non-streamed"} request`);
}

/** The usage the answer reports, after its fault. */
function reportedUsage(fault: Fault | undefined, usage: Usage | undefined): Usage | undefined {
  if (fault === "truncate-before-usage" || fault === "malformed-json" || fault === "huge-usage" || fault === "error-500") return undefined;
  return usage;
}

function answerDelivery(ask: Ask, payload: Payload, fault: Fault | undefined, requestId: string): Delivery {
  const headers = providerHeaders(ask.family, requestId);
  if (payload.kind === "sse") return { status: 200, headers: { ...SSE_HEADERS, ...headers }, ...sseDelivery(payload.events, ask.endpoint, fault) };
  const { length, ...rest } = jsonDelivery(payload.body, payload.usage, ask.endpoint, fault);
  return { status: 200, headers: { ...JSON_HEADERS, "content-length": String(length), ...headers }, ...rest };
}

async function write(response: ServerResponse, delivery: Delivery): Promise<void> {
  response.writeHead(delivery.status, delivery.headers);
  const chunks = delivery.byteByByte ? Array.from(Buffer.from(delivery.pieces.join("")), (byte) => Buffer.of(byte)) : delivery.pieces;
  for (const chunk of chunks) {
    if (response.destroyed) return;
    await new Promise<void>((resolve, reject) => response.write(chunk, (error) => (error ? reject(error) : resolve())));
    // A turn of the event loop between bytes puts each on the wire alone (Node's server sets TCP_NODELAY).
    if (delivery.byteByByte) await new Promise((resolve) => setImmediate(resolve));
  }
  // Dropping only once the last write is flushed: the cut falls exactly where the fault says.
  if (delivery.drop) response.destroy();
  else response.end();
}

// ---- the server ------------------------------------------------------------------------------

export async function startLlmProvider(options: LlmProviderOptions): Promise<LlmProvider> {
  const catalog: Catalog = {
    keys: { openai: options.keys.openai ?? [], anthropic: options.keys.anthropic ?? [], azure_openai: options.keys.azure_openai ?? [] },
    models: {
      openai: options.models?.openai ?? DEFAULT_MODELS.openai,
      anthropic: options.models?.anthropic ?? DEFAULT_MODELS.anthropic,
      azure_openai: options.models?.azure_openai ?? DEFAULT_MODELS.azure_openai,
    },
    acceptsAzureToken: options.acceptsAzureToken ?? (() => false),
  };
  const calls: RecordedCall[] = [];
  const faults: Fault[] = [];

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const body = parseBody(await readBody(request));
    const route = routeOf(url.pathname, request.headers["anthropic-version"] !== undefined);
    const call: RecordedCall = {
      family: route.family,
      method: request.method ?? "GET",
      path: url.pathname,
      query: url.search.slice(1),
      headers: receivedHeaders(request),
      body,
      stream: isObject(body) && body.stream === true,
      status: 0,
    };
    const requestId = newRequestId(route.family);
    const admitted = admit({ method: call.method, path: url.pathname, query: url.searchParams, headers: request.headers, body, route }, catalog);
    if ("status" in admitted) {
      call.status = admitted.status;
      calls.push(call);
      return write(response, refusalDelivery(route.family, admitted, requestId));
    }
    const fault = faults.shift();
    const counts = usageFor(admitted.endpoint, admitted.body);
    const payload = payloadFor(admitted, counts);
    const failure = fault === "error-500" ? serverError(route.family) : faultMismatch(route.family, fault, payload);
    const usage = !failure && reportsUsage(admitted.endpoint, admitted.body) ? reportedUsage(fault, counts) : undefined;
    Object.assign(call, { fault, status: failure ? failure.status : 200, usage });
    // Recorded before the first byte leaves, so a client that saw the answer finds its call.
    calls.push(call);
    return write(response, failure ? refusalDelivery(route.family, failure, requestId) : answerDelivery(admitted, payload, fault, requestId));
  }

  // A client that hangs up mid-answer is not the emulator's failure: drop the connection quietly.
  const server = createServer((request, response) => void handle(request, response).catch(() => response.destroy()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    // On every interface it is reachable on loopback too.
    url: `http://${options.host === undefined || options.host === "0.0.0.0" ? "127.0.0.1" : options.host}:${port}`,
    port,
    calls,
    injectFault: (fault) => void faults.push(fault),
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseBody(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Node keeps only the first of a repeated Authorization in `headers`; `headersDistinct` keeps them all. */
function receivedHeaders(request: IncomingMessage): RecordedCall["headers"] {
  return Object.fromEntries(Object.entries(request.headersDistinct).map(([name, values = []]) => [name, values.length === 1 ? values[0] : values]));
}

// ---- small helpers ---------------------------------------------------------------------------

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const finite = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : undefined);
const streamOptions = (body: Json): Json => (isObject(body.stream_options) ? body.stream_options : {});
const nowSeconds = () => Math.floor(Date.now() / 1000);

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const randomId = (length: number) => Array.from(randomBytes(length), (byte) => ALPHANUMERIC[byte % ALPHANUMERIC.length]).join("");
const randomHex = (bytes: number) => randomBytes(bytes).toString("hex");

/** Obfuscation padding: brings the text and its padding to a multiple of 16 characters. */
const padding = (text: string) => ALPHANUMERIC.slice(0, 16 - (text.length % 16));
