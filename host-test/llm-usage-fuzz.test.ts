// Property: the LLM filter's usage reader (assembly/llm/usage.ts) reads an answer as it streams
// past, in whatever chunks the upstream's bytes arrive. For valid answers of every provider shape
// (JSON and SSE) the recorded usage is the same for any split of the body (1-byte chunks, cuts
// inside "data:", inside CRLF, inside the usage object); a body cut off at any byte records exactly
// the usage objects that arrived whole, later fields replacing earlier ones (so Anthropic's
// message_start input survives a cut before message_delta), never half of one; and arbitrary bytes
// or garbage SSE never trap the VM and never record a count that is not a plain non-negative
// integer within the reader's bound. The answer always passes through untouched.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Filter } from "./support/exchange.ts";
import { answer, llmCredential, PRICES, type Provider, seedL1, sendLlm, sse, startLlmFilter, usageLogs } from "./support/llm.ts";

const RUNS = 300;

// ---- valid answers, with where each real usage object ends ----

interface UsageFields {
  prompt_tokens?: number;
  completion_tokens?: number;
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
  cached?: number;
}

interface Shape {
  name: string;
  provider: Provider;
  endpoint: string;
  model: keyof typeof PRICES;
  request: object;
  sse: boolean;
  body: Buffer;
  /** Each real usage object: the byte offset just past its closing brace, and what it says. */
  usages: { end: number; fields: UsageFields }[];
}

const MARK = (i: number) => `"@@USAGE${i}@@"`;

/** Replaces the markers left to right by the usage objects' JSON, noting where each ends. */
function withUsage(template: string, usages: { json: object; fields: UsageFields }[]): Pick<Shape, "body" | "usages"> {
  let text = template;
  const found: Shape["usages"] = [];
  usages.forEach((usage, i) => {
    const at = text.indexOf(MARK(i));
    expect(at, "usage marker").toBeGreaterThanOrEqual(0);
    const json = JSON.stringify(usage.json);
    text = text.slice(0, at) + json + text.slice(at + MARK(i).length);
    found.push({ end: Buffer.byteLength(text.slice(0, at + json.length)), fields: usage.fields });
  });
  return { body: Buffer.from(text, "utf8"), usages: found };
}

/** Text a model or an agent may put in strings: quotes, escapes, braces, fake usage and SSE lines. */
const content = fc
  .array(fc.constantFrom('"usage":{"prompt_tokens":0,"completion_tokens":0}', '{"usage":{"input_tokens":0}}', "\\", '"', "{", "}", "[", "]", ":", "data: ", "\n", "\r\n", "é", "😀", "usage", "x", " ", "\u0000"), { maxLength: 12 })
  .map((parts) => parts.join(""));
const tokens = fc.nat({ max: 3_000_000 });
const planted = { usage: { input_tokens: 0, output_tokens: 0, prompt_tokens: 0, completion_tokens: 0 } };
const echoed = {
  tools: [{ type: "function", name: "f", parameters: { type: "object", properties: { ...planted, usage2: planted } }, ...planted }],
  text: { format: { type: "json_schema", schema: { properties: planted, ...planted } } },
  prompt: { id: "pmpt", variables: { ...planted } },
};

const openaiChat = fc.record({ provider: fc.constantFrom<Provider>("openai", "azure_openai"), stream: fc.boolean(), crlf: fc.boolean(), pretty: fc.boolean(), texts: fc.array(content, { maxLength: 4 }), prompt: tokens, completion: tokens, cached: tokens })
  .map(({ provider, stream, crlf, pretty, texts, prompt, completion, cached }): Shape => {
    const cachedTokens = Math.min(cached, prompt);
    const usage = { json: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cachedTokens, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } }, fields: { prompt_tokens: prompt, completion_tokens: completion, cached: cachedTokens } };
    const endpoint = provider === "openai" ? "/v1/chat/completions" : "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";
    const request = provider === "openai" ? { model: "gpt-4o", stream, messages: [] } : { stream, messages: [] };
    const template = stream
      ? sse([...texts.map((text) => ({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: text } }], usage: null })), { id: "c", choices: [], usage: "@@USAGE0@@" }, "[DONE]"], crlf ? "\r\n" : "\n")
      : JSON.stringify({ id: "c", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: texts.join("") } }], usage: "@@USAGE0@@", system_fingerprint: "fp" }, null, pretty ? 2 : undefined);
    return { name: `${provider} chat ${stream ? "sse" : "json"}`, provider, endpoint, model: "gpt-4o", request, sse: stream, ...withUsage(template, [usage]) };
  });

const openaiResponses = fc.record({ stream: fc.boolean(), crlf: fc.boolean(), texts: fc.array(content, { maxLength: 4 }), input: tokens, output: tokens, cached: tokens })
  .map(({ stream, crlf, texts, input, output, cached }): Shape => {
    const cachedTokens = Math.min(cached, input);
    const usage = { json: { input_tokens: input, input_tokens_details: { cached_tokens: cachedTokens }, output_tokens: output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input + output }, fields: { input_tokens: input, output_tokens: output, cached: cachedTokens } };
    const response = { id: "resp", object: "response", model: "gpt-4o-mini", ...echoed, instructions: texts.join("") };
    const template = stream
      ? sse([
        { event: "response.created", data: { type: "response.created", response: { ...response, usage: null } } },
        ...texts.map((delta) => ({ event: "response.output_text.delta", data: { type: "response.output_text.delta", delta } })),
        { event: "response.completed", data: { type: "response.completed", response: { ...response, output: [{ type: "message", content: [{ type: "output_text", text: texts.join("") }] }], usage: "@@USAGE0@@" } } },
      ], crlf ? "\r\n" : "\n")
      : JSON.stringify({ ...response, output: [], usage: "@@USAGE0@@" });
    return { name: `responses ${stream ? "sse" : "json"}`, provider: "openai", endpoint: "/v1/responses", model: "gpt-4o-mini", request: { model: "gpt-4o-mini", stream, input: "x" }, sse: stream, ...withUsage(template, [usage]) };
  });

const embeddings = fc.record({ prompt: tokens, vector: fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 20 }) })
  .map(({ prompt, vector }): Shape => {
    const template = JSON.stringify({ object: "list", data: [{ object: "embedding", index: 0, embedding: vector }], model: "text-embedding-3-small", usage: "@@USAGE0@@" });
    return { name: "embeddings", provider: "openai", endpoint: "/v1/embeddings", model: "text-embedding-3-small", request: { model: "text-embedding-3-small", input: "x" }, sse: false, ...withUsage(template, [{ json: { prompt_tokens: prompt, total_tokens: prompt }, fields: { prompt_tokens: prompt } }]) };
  });

const anthropic = fc.record({ stream: fc.boolean(), crlf: fc.boolean(), texts: fc.array(content, { maxLength: 4 }), input: tokens, read: tokens, write: tokens, output: tokens, deltas: fc.integer({ min: 1, max: 3 }), cumulativeInput: fc.boolean() })
  .map(({ stream, crlf, texts, input, read, write, output, deltas, cumulativeInput }): Shape => {
    const start = { json: { input_tokens: input, cache_creation_input_tokens: write, cache_read_input_tokens: read, cache_creation: { ephemeral_5m_input_tokens: write, ephemeral_1h_input_tokens: 0 }, output_tokens: 1, service_tier: "standard" }, fields: { input_tokens: input, cache_creation_input_tokens: write, cache_read_input_tokens: read, output_tokens: 1 } };
    const request = { model: "claude-sonnet-4-5", max_tokens: 1024, stream, messages: [] };
    if (!stream) {
      const template = JSON.stringify({ id: "msg", type: "message", role: "assistant", content: [{ type: "text", text: texts.join("") }], usage: "@@USAGE0@@" });
      return { name: "anthropic json", provider: "anthropic", endpoint: "/v1/messages", model: "claude-sonnet-4-5", request, sse: false, ...withUsage(template, [{ json: { ...start.json, output_tokens: output }, fields: { ...start.fields, output_tokens: output } }]) };
    }
    // message_delta carries the cumulative output (growing), and in newer versions the input counts again.
    const outputs = Array.from({ length: deltas }, (_, i) => Math.floor((output * (i + 1)) / deltas));
    const deltaUsages = outputs.map((out) => cumulativeInput
      ? { json: { input_tokens: input, cache_creation_input_tokens: write, cache_read_input_tokens: read, output_tokens: out }, fields: { input_tokens: input, cache_creation_input_tokens: write, cache_read_input_tokens: read, output_tokens: out } }
      : { json: { output_tokens: out }, fields: { output_tokens: out } });
    const template = sse([
      { event: "message_start", data: { type: "message_start", message: { id: "msg", type: "message", role: "assistant", model: "claude-sonnet-4-5", content: [], stop_reason: null, usage: "@@USAGE0@@" } } },
      { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
      { event: "ping", data: { type: "ping" } },
      ...texts.map((text) => ({ event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } } })),
      ...outputs.map((_, i) => ({ event: "message_delta", data: { type: "message_delta", delta: { stop_reason: i === deltas - 1 ? "end_turn" : null }, usage: `@@USAGE${i + 1}@@` } })),
      { event: "message_stop", data: { type: "message_stop" } },
    ], crlf ? "\r\n" : "\n");
    return { name: "anthropic sse", provider: "anthropic", endpoint: "/v1/messages", model: "claude-sonnet-4-5", request, sse: true, ...withUsage(template, [start, ...deltaUsages]) };
  });

const validAnswer = fc.oneof(openaiChat, openaiResponses, embeddings, anthropic);

// ---- the reference: what a reader of whole usage objects records ----

interface Counts {
  input_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  cost_nanousd: number;
}

/** The usage objects that ended within `delivered` bytes, later fields replacing earlier ones, in one shape. */
function expectedCounts(shape: Shape, delivered: number): Counts {
  const seen: UsageFields = {};
  for (const usage of shape.usages) if (usage.end <= delivered) Object.assign(seen, usage.fields);
  let input: number;
  let cached: number;
  let write = 0;
  if (shape.provider === "anthropic") {
    cached = seen.cache_read_input_tokens ?? 0;
    write = seen.cache_creation_input_tokens ?? 0;
    input = (seen.input_tokens ?? 0) + cached + write;
  } else {
    input = seen.prompt_tokens ?? seen.input_tokens ?? 0;
    cached = Math.min(input, seen.cached ?? 0);
  }
  const output = seen.completion_tokens ?? seen.output_tokens ?? 0;
  const price = PRICES[shape.model] as { input: number; cached_input?: number; cache_write?: number; output: number };
  // nano-USD per token = USD per million × 1000 (all prices have at most 3 decimals).
  const nano = (usd: number | undefined, fallback: number) => (usd === undefined ? fallback : Math.round(usd * 1000));
  const pIn = nano(price.input, 0);
  const cost = (input - cached - write) * pIn + cached * nano(price.cached_input, pIn) + write * nano(price.cache_write, pIn) + output * nano(price.output, 0);
  return { input_tokens: input, cached_input_tokens: cached, cache_write_tokens: write, output_tokens: output, cost_nanousd: cost };
}

// ---- driving one call per run, on one VM per provider (state carried between runs is part of the test) ----

function filters() {
  const byProvider = new Map<Provider, Filter>();
  return (provider: Provider): Filter => {
    let filter = byProvider.get(provider);
    if (filter === undefined) {
      filter = startLlmFilter({ providers: { openai: {}, anthropic: {}, azure_openai: {} } });
      seedL1(filter.host, provider, llmCredential(provider));
      byProvider.set(provider, filter);
    }
    return filter;
  };
}

function call(filter: Filter, shape: Pick<Shape, "provider" | "endpoint" | "request" | "sse">, body: Uint8Array, splits: number[], truncateAt?: number, cut?: "end" | "reset") {
  const stream = sendLlm(filter.vm, { provider: shape.provider, endpoint: shape.endpoint, body: shape.request });
  expect(stream.forwardedRequest?.ended, "the call went on").toBe(true);
  const logged = usageLogs(filter.host).length;
  answer(stream, { sse: shape.sse, body, splits, truncateAt, cut });
  expect(filter.vm.failed).toBeUndefined();
  const delivered = truncateAt === undefined ? body : body.subarray(0, truncateAt);
  expect(Buffer.from(stream.response!.body).equals(Buffer.from(delivered)), "the answer passed untouched").toBe(true);
  const logs = usageLogs(filter.host);
  expect(logs.length, "one usage record per call").toBe(logged + 1);
  return { log: logs[logs.length - 1], rawLog: filter.host.logs.filter((record) => record.message.startsWith("hexr_llm_usage ")).at(-1)!.message };
}

function countsOf(log: Counts): Counts {
  const { input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_nanousd } = log;
  return { input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_nanousd };
}

/** Cut offsets that matter to a byte reader: inside "data:", between CR and LF, inside and around "usage". */
function interestingCuts(body: Buffer): number[] {
  const cuts: number[] = [];
  for (const needle of ["data:", "\r\n", '"usage"', "usage", "}}"]) {
    for (let at = body.indexOf(needle); at >= 0; at = body.indexOf(needle, at + 1)) {
      for (let k = 0; k <= needle.length; k++) cuts.push(at + k);
    }
  }
  return cuts;
}

/** How the body is cut: anywhere, every byte, or at the places that matter. */
const splitPlan = fc.record({ mode: fc.constantFrom("random", "random", "bytes", "interesting"), seeds: fc.array(fc.nat(), { maxLength: 24 }) });

function cutsFor(plan: { mode: string; seeds: number[] }, body: Buffer, within = body.byteLength): number[] {
  if (within <= 1) return [];
  if (plan.mode === "bytes") return Array.from({ length: within - 1 }, (_, i) => i + 1);
  if (plan.mode === "interesting") {
    const interesting = interestingCuts(body).filter((at) => at < within);
    return interesting.length === 0 ? [] : plan.seeds.map((seed) => interesting[seed % interesting.length]);
  }
  return plan.seeds.map((seed) => seed % within);
}

/** Where the answer is cut: anywhere, or a few bytes around the end of one of its usage objects. */
const cutPoint = fc.record({ near: fc.boolean(), n: fc.nat(), delta: fc.integer({ min: -3, max: 2 }) });

function truncation(shape: Shape, point: { near: boolean; n: number; delta: number }): number {
  const size = shape.body.byteLength;
  if (!point.near) return point.n % (size + 1);
  const usage = shape.usages[point.n % shape.usages.length];
  return Math.max(0, Math.min(size, usage.end + point.delta));
}

describe("the usage reader under any chunking", () => {
  it("records the same usage for any split of a valid answer", () => {
    const filterFor = filters();
    fc.assert(
      fc.property(validAnswer, splitPlan, (shape, plan) => {
        const { log } = call(filterFor(shape.provider), shape, shape.body, cutsFor(plan, shape.body));
        expect(log.usage_seen).toBe(true);
        expect(countsOf(log), shape.name).toEqual(expectedCounts(shape, shape.body.byteLength));
      }),
      { numRuns: RUNS },
    );
  });

  it("records exactly the usage objects that arrived whole when the answer is cut at any byte", () => {
    const filterFor = filters();
    fc.assert(
      fc.property(validAnswer, cutPoint, splitPlan, fc.constantFrom<"end" | "reset">("end", "reset"), (shape, point, plan, cut) => {
        const truncateAt = truncation(shape, point);
        const { log } = call(filterFor(shape.provider), shape, shape.body, cutsFor(plan, shape.body, truncateAt), truncateAt, cut);
        const expected = expectedCounts(shape, truncateAt);
        expect(countsOf(log), `${shape.name} cut at ${truncateAt} (${cut})`).toEqual(expected);
        expect(log.usage_seen).toBe(shape.usages.some((usage) => usage.end <= truncateAt));
      }),
      { numRuns: RUNS },
    );
  });

  it("keeps Anthropic's message_start counts when the stream is cut before message_delta", () => {
    const filterFor = filters();
    const shape = fc.sample(anthropic.filter((s) => s.sse), { numRuns: 1, seed: 7 })[0];
    const cutAt = shape.usages[0].end + 1;
    const { log } = call(filterFor("anthropic"), shape, shape.body, [], cutAt, "reset");
    const start = shape.usages[0].fields;
    expect(log.input_tokens).toBe(start.input_tokens! + start.cache_read_input_tokens! + start.cache_creation_input_tokens!);
    expect(log.output_tokens).toBe(1);
  });
});

// ---- garbage ----

const junkNumber = fc.constantFrom("1e30", "-5", '"12"', "1.5", "1e12", "1000000000001", "999999999999", "9007199254740993", "-0", "0", "1E3", "01", "0x10", "NaN", "Infinity", "true", "null", "[]", "{}", "12abc", "-", "1e", "", "18446744073709551617");
const usageKey = fc.constantFrom("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "total_tokens");
const junkUsage = fc.array(fc.tuple(usageKey, junkNumber), { maxLength: 5 }).map((members) => `{${members.map(([key, value]) => `"${key}":${value}`).join(",")}}`);
const junkDetails = junkNumber.map((value) => `{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":${value}},"input_tokens_details":{"cached_tokens":${value}}}`);
const garbageDocument = fc.oneof(
  junkUsage.map((usage) => `{"usage":${usage}}`),
  junkDetails.map((usage) => `{"usage":${usage}}`),
  junkUsage.map((usage) => `{"response":{"usage":${usage}}}`),
  junkUsage.map((usage) => `{"message":{"usage":${usage}}}`),
  fc.integer({ min: 1, max: 10_000 }).map((depth) => '{"usage":'.repeat(depth) + '{"prompt_tokens":1}' + "}".repeat(depth)),
  fc.integer({ min: 1, max: 10_000 }).map((depth) => "[".repeat(depth) + '{"usage":{"prompt_tokens":2}}'),
  fc.integer({ min: 1, max: 10_000 }).map((depth) => '{"usage":{"a":' + "[".repeat(depth) + "]".repeat(depth) + ',"prompt_tokens":3}}'),
  fc.integer({ min: 65_537, max: 80_000 }).map((size) => `{"usage":{"prompt_tokens":4,"x":"${"a".repeat(size)}"}}`),
  fc.integer({ min: 65_537, max: 80_000 }).map((size) => "{".repeat(size)),
  fc.constantFrom("}}}}]]]", '{"usage":{"prompt_tokens":5', '{"usage":}', '{"usage":{{{', '{"usage":"}}}"', '{"usage":{"prompt_tokens":6}}}}}', '"usage":{"prompt_tokens":7}', '{"usage":{"prompt_tokens":8,"prompt_tokens":9}}', "\\", '"'),
  fc.string({ unit: "binary", maxLength: 200 }),
);
const garbageLine = fc.oneof(
  garbageDocument.map((document) => `data: ${document}`),
  garbageDocument.map((document) => `data:${document}`),
  garbageDocument,
  fc.constantFrom("event: message_delta", ": keep-alive", "id: 7", "retry: 10", "data", "data: [DONE]", "dat", ""),
);
const garbageBody = fc.oneof(
  fc.array(garbageLine, { maxLength: 8 }).chain((lines) => fc.constantFrom("\n", "\r\n", "\r").map((newline) => Buffer.from(lines.join(newline) + newline, "utf8"))),
  garbageDocument.map((document) => Buffer.from(document, "utf8")),
  fc.uint8Array({ maxLength: 4096 }).map((bytes) => Buffer.from(bytes)),
);

const COUNT_FIELDS = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens"] as const;
const MAX_COUNT = 1_000_000_000_000n;

describe("the usage reader under garbage", () => {
  it("never traps and never records a count that is not a plain non-negative integer within bounds", () => {
    const filterFor = filters();
    fc.assert(
      fc.property(garbageBody, fc.boolean(), fc.constantFrom<Provider>("openai", "anthropic"), splitPlan, (body, asSse, provider, plan) => {
        const shape = {
          provider,
          endpoint: provider === "openai" ? "/v1/chat/completions" : "/v1/messages",
          request: { model: provider === "openai" ? "gpt-4o" : "claude-sonnet-4-5", stream: asSse, stream_options: provider === "openai" && asSse ? { include_usage: true } : undefined, messages: [] },
          sse: asSse,
        };
        const { rawLog } = call(filterFor(provider), shape, body, plan.mode === "bytes" && body.byteLength > 2048 ? [] : cutsFor(plan, body));
        const values = Object.fromEntries([...COUNT_FIELDS, "cost_nanousd"].map((field) => {
          const match = new RegExp(`"${field}":(-?[^,}]*)`).exec(rawLog);
          expect(match, field).not.toBeNull();
          expect(match![1], `${field} in ${rawLog}`).toMatch(/^(0|[1-9][0-9]*)$/);
          return [field, BigInt(match![1])];
        }));
        // Each reported field is bounded; Anthropic's input is the sum of three of them.
        for (const field of COUNT_FIELDS) {
          const bound = provider === "anthropic" && field === "input_tokens" ? 3n * MAX_COUNT : MAX_COUNT;
          expect(values[field] <= bound, `${field} = ${values[field]}`).toBe(true);
        }
        expect(values.cached_input_tokens <= values.input_tokens).toBe(true);
        expect(values.cache_write_tokens <= values.input_tokens).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

