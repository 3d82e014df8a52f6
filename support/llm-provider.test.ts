// The loopback LLM provider emulator against the providers' official clients: the openai npm
// client in process, the openai and anthropic Python clients (support/llm-clients) as a
// subprocess. Each answer must parse in the client, and the usage the client reads must be the one
// the emulator recorded and expectedUsage predicts. Refusals and faults are checked on the raw wire.
import { execFile } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedUsage, startLlmProvider, type Fault, type LlmProvider, type RecordedCall } from "./llm-provider.ts";
import { projectRoot, tools } from "./tools.ts";

const KEYS = { openai: "sk-emulator-openai-0001", anthropic: "sk-ant-emulator-0001", azure: "azure-emulator-key-0001" };
const AZURE_TOKEN = "entra-token-from-the-stack";
const REPLY = "Hello from the loopback provider: this reply is twelve tokens.";

let provider: LlmProvider;
beforeAll(async () => {
  provider = await startLlmProvider({
    keys: { openai: [KEYS.openai], anthropic: [KEYS.anthropic], azure_openai: [KEYS.azure] },
    acceptsAzureToken: (token) => token === AZURE_TOKEN,
  });
});
afterAll(() => provider?.stop());

type Usage = NonNullable<RecordedCall["usage"]>;

/** The one recorded call whose body mentions `marker`. */
function callFor(marker: string): RecordedCall {
  const found = provider.calls.filter((call) => JSON.stringify(call.body ?? "").includes(marker));
  expect(found, marker).toHaveLength(1);
  return found[0];
}

/** The usage was reported, recorded, and is what expectedUsage predicts from the request. */
function expectPredicted(call: RecordedCall, readByClient: Usage): void {
  expect(call.usage).toBeDefined();
  expect(call.usage).toEqual(expectedUsage(call.family, call.path, call.body));
  expect(readByClient).toEqual(call.usage);
}

// Each provider's usage object normalised, written out here on its own so the test checks the
// emulator's accounting rather than repeating it: OpenAI counts cached tokens inside prompt
// tokens, Anthropic counts cache reads and writes outside input_tokens.
const fromOpenAi = (usage: any): Usage => ({
  input_tokens: usage.prompt_tokens,
  cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
  cache_write_tokens: usage.prompt_tokens_details?.cache_write_tokens ?? 0,
  output_tokens: usage.completion_tokens,
});
const fromResponses = (usage: any): Usage => ({
  input_tokens: usage.input_tokens,
  cached_tokens: usage.input_tokens_details.cached_tokens,
  cache_write_tokens: usage.input_tokens_details.cache_write_tokens,
  output_tokens: usage.output_tokens,
});
const fromAnthropic = (usage: any): Usage => ({
  input_tokens: usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens,
  cached_tokens: usage.cache_read_input_tokens,
  cache_write_tokens: usage.cache_creation_input_tokens,
  output_tokens: usage.output_tokens,
});

// ---- raw HTTP ----------------------------------------------------------------------------------

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** False when the connection closed before the whole HTTP message arrived. */
  complete: boolean;
}

function post(pathname: string, body: unknown, headers: http.OutgoingHttpHeaders): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${provider.url}${pathname}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, agent: false }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("error", () => undefined); // a cut answer: `complete` tells
      response.on("close", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text, complete: response.complete }));
    });
    request.on("error", reject);
    request.end(typeof body === "string" ? body : JSON.stringify(body));
  });
}

const openAiAuth = { authorization: `Bearer ${KEYS.openai}` };
const anthropicAuth = { "x-api-key": KEYS.anthropic, "anthropic-version": "2023-06-01" };
const AZURE_CHAT = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

const chatBody = (marker: string) => ({ model: "gpt-4o", messages: [{ role: "user" as const, content: marker }] });
const chatStreamBody = (marker: string) => ({ ...chatBody(marker), stream: true as const, stream_options: { include_usage: true } });
const anthropicBody = (marker: string, extra: object = {}) => ({ model: "claude-haiku-4-5", max_tokens: 64, messages: [{ role: "user", content: marker }], ...extra });

/** Server-sent events as a spec-following reader sees them: comments skipped, `event:` and `data:` fields kept. */
function sseEvents(text: string): { event?: string; data: string }[] {
  return text.split("\n\n").flatMap((block) => {
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      if (field === "data") data.push(value);
    }
    return data.length ? [{ event, data: data.join("\n") }] : [];
  });
}

/** The events whose data is JSON, parsed. */
const jsonEvents = (text: string): any[] =>
  sseEvents(text).flatMap(({ data }) => {
    try {
      return [JSON.parse(data)];
    } catch {
      return [];
    }
  });

/**
 * One HTTP/1.1 exchange over a bare socket, every header line as given (a name may repeat): the
 * body's chunk sizes as sent, and its data.
 */
function rawChunks(pathname: string, body: object, headers: Record<string, string | string[]>): Promise<{ head: string; sizes: number[]; data: string }> {
  const payload = JSON.stringify(body);
  const lines = [`POST ${pathname} HTTP/1.1`, "host: 127.0.0.1", "content-type: application/json", `content-length: ${Buffer.byteLength(payload)}`, "connection: close"];
  for (const [name, values] of Object.entries(headers)) for (const value of [values].flat()) lines.push(`${name}: ${value}`);
  return new Promise((resolve, reject) => {
    // Not socket.end(): a half-closed client makes Node's server give up on the answer.
    const socket = net.connect(provider.port, "127.0.0.1", () => socket.write(`${lines.join("\r\n")}\r\n\r\n${payload}`));
    const received: Buffer[] = [];
    socket.on("data", (chunk) => received.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      const all = Buffer.concat(received);
      const split = all.indexOf("\r\n\r\n");
      const sizes: number[] = [];
      const data: Buffer[] = [];
      for (let at = split + 4; at < all.length; ) {
        const eol = all.indexOf("\r\n", at);
        const size = parseInt(all.subarray(at, eol).toString(), 16);
        sizes.push(size);
        data.push(all.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      resolve({ head: all.subarray(0, split).toString(), sizes, data: Buffer.concat(data).toString() });
    });
  });
}

// ---- the official openai npm client --------------------------------------------------------------

describe("OpenAI, through the official openai npm client", () => {
  const client = () => new OpenAI({ apiKey: KEYS.openai, baseURL: `${provider.url}/v1`, maxRetries: 0 });

  it("answers chat completions; with a prompt_cache_key half the prompt is cached, inside prompt_tokens", async () => {
    const answer = await client().chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "npm chat: what is a sidecar, in one line?" }],
      prompt_cache_key: "tenant-a",
    });
    const call = callFor("npm chat:");
    expect(call).toMatchObject({ family: "openai", method: "POST", path: "/v1/chat/completions", status: 200, stream: false });
    expect(call.headers.authorization).toBe(`Bearer ${KEYS.openai}`);
    expect(answer).toMatchObject({ object: "chat.completion", model: "gpt-4o", choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: REPLY, refusal: null } }] });
    expectPredicted(call, fromOpenAi(answer.usage));
    expect(answer.usage!.prompt_tokens_details!.cached_tokens).toBe(Math.floor(answer.usage!.prompt_tokens / 2));
    expect(answer.usage!.total_tokens).toBe(answer.usage!.prompt_tokens + answer.usage!.completion_tokens);
  });

  it("streams chat with include_usage: usage null on every chunk but a last, choice-less one that carries it", async () => {
    const stream = await client().chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "npm chat stream: hello" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(chunks.slice(0, -1).map((chunk) => chunk.usage)).toEqual(chunks.slice(0, -1).map(() => null));
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta.content ?? "")).join("")).toBe(REPLY);
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe("stop");
    expectPredicted(callFor("npm chat stream:"), fromOpenAi(last.usage));
  });

  it("streams chat without include_usage: no usage anywhere, and none predicted or recorded", async () => {
    const stream = await client().chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "npm chat no usage: hello" }], stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((chunk) => !("usage" in chunk))).toBe(true);
    const call = callFor("npm chat no usage:");
    expect(call.usage).toBeUndefined();
    expect(expectedUsage(call.family, call.path, call.body)).toBeUndefined();
  });

  it("streams the responses API: named, numbered events, the usage in response.completed; settings echoed", async () => {
    const functionTools = [{ type: "function" as const, name: "lookup", description: "Look a word up.", parameters: { type: "object", properties: {} }, strict: false }];
    const stream = await client().responses.create({
      model: "gpt-4o",
      instructions: "Answer in one line.",
      input: [{ role: "user", content: [{ type: "input_text", text: "npm responses: hello" }] }],
      metadata: { agent: "probe" },
      tools: functionTools,
      prompt_cache_key: "tenant-b",
      stream: true,
    });
    const events = [];
    for await (const event of stream) events.push(event);
    expect(events.map((event) => event.type)).toEqual([
      "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
      ...Array(12).fill("response.output_text.delta"),
      "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]);
    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, i) => i));
    const completed = events.at(-1)!;
    if (completed.type !== "response.completed") throw new Error(completed.type);
    expect(completed.response).toMatchObject({ object: "response", status: "completed", instructions: "Answer in one line.", metadata: { agent: "probe" }, tools: functionTools, prompt_cache_key: "tenant-b" });
    expect(completed.response.output).toMatchObject([{ type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: REPLY, annotations: [] }] }]);
    expectPredicted(callFor("npm responses:"), fromResponses(completed.response.usage));
    expect(completed.response.usage!.input_tokens_details.cached_tokens).toBeGreaterThan(0);
  });

  it("answers embeddings in base64 (the npm client's default) and as floats: the same unit vectors", async () => {
    const input = ["npm embeddings: one", "npm embeddings: two"];
    const asBase64 = await client().embeddings.create({ model: "text-embedding-3-small", input });
    const asFloats = await client().embeddings.create({ model: "text-embedding-3-small", input, encoding_format: "float" });
    const [base64Call, floatCall] = provider.calls.slice(-2);
    expect([(base64Call.body as any).encoding_format, (floatCall.body as any).encoding_format]).toEqual(["base64", "float"]);
    expect(asBase64.data.map((item) => item.embedding)).toEqual(asFloats.data.map((item) => item.embedding));
    expect(asBase64.data.map((item) => item.index)).toEqual([0, 1]);
    const [first, second] = asBase64.data.map((item) => item.embedding);
    expect(first).toHaveLength(1536);
    expect(Math.hypot(...first)).toBeCloseTo(1, 5);
    expect(first).not.toEqual(second);
    expect(asBase64.usage).toEqual({ prompt_tokens: base64Call.usage!.input_tokens, total_tokens: base64Call.usage!.input_tokens });
    expectPredicted(base64Call, { input_tokens: asBase64.usage.prompt_tokens, cached_tokens: 0, cache_write_tokens: 0, output_tokens: 0 });
  });

  it("answers legacy completions, cut at max_tokens with finish_reason length", async () => {
    const answer = await client().completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "npm legacy: say hello", max_tokens: 4 });
    expect(answer).toMatchObject({ object: "text_completion", choices: [{ text: "Hello from the loopback", finish_reason: "length", index: 0, logprobs: null }] });
    expectPredicted(callFor("npm legacy:"), fromOpenAi(answer.usage));
    expect(answer.usage!.completion_tokens).toBe(4);
  });
});

// ---- the official Python clients -----------------------------------------------------------------

describe("the official Python clients (openai, anthropic)", () => {
  let results: Record<string, any>;
  beforeAll(async () => {
    const script = path.join(projectRoot, "support", "llm-clients", "official_clients.py");
    // Nothing from this environment but PATH: no proxy settings, no provider keys or endpoints.
    const env = { PATH: process.env.PATH, HOME: tmpdir(), LLM_URL: provider.url, OPENAI_API_KEY: KEYS.openai, ANTHROPIC_API_KEY: KEYS.anthropic, AZURE_API_KEY: KEYS.azure, AZURE_TOKEN };
    const { stdout } = await promisify(execFile)(tools.python(), [script], { env, timeout: 60_000 });
    results = JSON.parse(stdout);
  });

  it("openai: chat, streamed chat with include_usage, responses, and streamed responses (completed and incomplete)", () => {
    expect(results.openai_chat).toMatchObject({ text: REPLY, finish_reason: "stop" });
    expectPredicted(callFor("case openai_chat:"), fromOpenAi(results.openai_chat.usage));
    expect(results.openai_chat.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);

    expect(results.openai_chat_stream).toMatchObject({ text: REPLY, chunks: 15 });
    expectPredicted(callFor("case openai_chat_stream:"), fromOpenAi(results.openai_chat_stream.usage));

    expect(results.openai_responses).toMatchObject({ text: REPLY, status: "completed", metadata: { agent: "probe" } });
    expectPredicted(callFor("case openai_responses:"), fromResponses(results.openai_responses.usage));
    expect(results.openai_responses_stream).toMatchObject({ text: REPLY, status: "completed" });
    expectPredicted(callFor("case openai_responses_stream:"), fromResponses(results.openai_responses_stream.usage));

    expect(results.openai_responses_incomplete).toMatchObject({ status: "incomplete" });
    expect(results.openai_responses_incomplete.types.at(-1)).toBe("response.incomplete");
    expectPredicted(callFor("case openai_responses_incomplete:"), fromResponses(results.openai_responses_incomplete.usage));
    expect(results.openai_responses_incomplete.usage.output_tokens).toBe(5);
  });

  it("anthropic: messages and messages.stream(); cache reads and writes outside input_tokens; the key as a bearer", () => {
    const message = results.anthropic_message;
    expect(message).toMatchObject({ text: REPLY, stop_reason: "end_turn" });
    const call = callFor("case anthropic_message:");
    expectPredicted(call, fromAnthropic(message.usage));
    expect(message.usage.cache_read_input_tokens).toBeGreaterThan(0);
    expect(message.usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(message.usage.cache_creation.ephemeral_5m_input_tokens).toBe(message.usage.cache_creation_input_tokens);
    // anthropic 2.x sends api_key as `Authorization: Bearer`, not `x-api-key`.
    expect(call.headers.authorization).toBe(`Bearer ${KEYS.anthropic}`);
    expect(call.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(call.headers["x-api-key"]).toBeUndefined();

    expect(results.anthropic_stream).toMatchObject({ text: "Hello from the loopback provider", stop_reason: "max_tokens" });
    expectPredicted(callFor("case anthropic_stream:"), fromAnthropic(results.anthropic_stream.usage));
    expect(results.anthropic_stream.usage.output_tokens).toBe(5);
  });

  it("AzureOpenAI: an api-key, and an Entra token from azure_ad_token_provider; streams open with a choice-less filter chunk", () => {
    expect(results.azure_key_chat).toMatchObject({ text: REPLY });
    const byKey = callFor("case azure_key_chat:");
    expect(byKey).toMatchObject({ family: "azure_openai", path: "/openai/deployments/gpt-4o/chat/completions", query: "api-version=2024-10-21" });
    expect(byKey.headers["api-key"]).toBe(KEYS.azure);
    expect(byKey.headers.authorization).toBeUndefined();
    expectPredicted(byKey, fromOpenAi(results.azure_key_chat.usage));

    expect(results.azure_key_stream).toMatchObject({ text: REPLY, choiceless_chunks: 2 });
    expectPredicted(callFor("case azure_key_stream:"), fromOpenAi(results.azure_key_stream.usage));

    expect(results.azure_token_chat).toMatchObject({ text: "Hello from the", finish_reason: "length" });
    const byToken = callFor("case azure_token_chat:");
    expect(byToken.headers.authorization).toBe(`Bearer ${AZURE_TOKEN}`);
    expect(byToken.headers["api-key"]).toBeUndefined();
    expectPredicted(byToken, fromOpenAi(results.azure_token_chat.usage));
  });

  it("each client raises its own error type from the provider's own error body", () => {
    expect(results.openai_wrong_key).toMatchObject({ error: "AuthenticationError", status: 401, body: { code: "invalid_api_key", type: "invalid_request_error" } });
    expect(results.anthropic_wrong_key).toMatchObject({ error: "AuthenticationError", status: 401, body: { type: "error", error: { type: "authentication_error" } } });
    expect(results.anthropic_unknown_model).toMatchObject({ error: "NotFoundError", status: 404, body: { error: { type: "not_found_error", message: "model: claude-unknown-9" } } });
    expect(results.azure_wrong_key).toMatchObject({ error: "AuthenticationError", status: 401, body: { code: "401" } });
    expect(JSON.stringify(results)).not.toMatch(/wrong-key-from-python|wrong-azure-key/);
  });
});

// ---- refusals ------------------------------------------------------------------------------------

describe("refusals, each in its provider's own format", () => {
  it("a wrong or missing key: 401, and the key presented appears nowhere in the answer", async () => {
    const wrong = "sk-presented-but-wrong-4242";
    const cases: [string, object, http.OutgoingHttpHeaders, object][] = [
      ["/v1/chat/completions", chatBody("refusal"), { authorization: `Bearer ${wrong}` }, { error: { type: "invalid_request_error", code: "invalid_api_key", param: null } }],
      ["/v1/chat/completions", chatBody("refusal"), {}, { error: { type: "invalid_request_error", code: null } }],
      ["/v1/messages", anthropicBody("refusal"), { "x-api-key": wrong, "anthropic-version": "2023-06-01" }, { type: "error", error: { type: "authentication_error", message: "invalid x-api-key" } }],
      ["/v1/messages", anthropicBody("refusal"), { authorization: `Bearer ${wrong}`, "anthropic-version": "2023-06-01" }, { type: "error", error: { type: "authentication_error" } }],
      ["/v1/messages", anthropicBody("refusal"), { "anthropic-version": "2023-06-01" }, { type: "error", error: { type: "authentication_error", message: "x-api-key header is required" } }],
      [AZURE_CHAT, chatBody("refusal"), { "api-key": wrong }, { error: { code: "401" } }],
      [AZURE_CHAT, chatBody("refusal"), { authorization: `Bearer ${wrong}` }, { error: { code: "401" } }],
    ];
    for (const [pathname, body, headers, error] of cases) {
      const answer = await post(pathname, body, headers);
      expect({ status: answer.status, body: JSON.parse(answer.text) }, `${pathname} ${JSON.stringify(headers)}`).toMatchObject({ status: 401, body: error });
      expect(answer.text).not.toContain(wrong);
      expect(answer.text).not.toContain("4242");
    }
    const anthropic = await post("/v1/messages", anthropicBody("refusal"), { "x-api-key": wrong, "anthropic-version": "2023-06-01" });
    expect(anthropic.headers["request-id"]).toBe(JSON.parse(anthropic.text).request_id);
  });

  it("Anthropic: no anthropic-version, no max_tokens: 400 invalid_request_error; x-api-key works as well as a bearer", async () => {
    const noVersion = await post("/v1/messages", anthropicBody("no version"), { "x-api-key": KEYS.anthropic });
    expect({ status: noVersion.status, body: JSON.parse(noVersion.text) }).toMatchObject({
      status: 400,
      body: { type: "error", error: { type: "invalid_request_error", message: "anthropic-version: header is required" } },
    });
    const { max_tokens: _, ...noLimit } = anthropicBody("no max_tokens");
    const unlimited = await post("/v1/messages", noLimit, anthropicAuth);
    expect({ status: unlimited.status, body: JSON.parse(unlimited.text) }).toMatchObject({ status: 400, body: { error: { type: "invalid_request_error", message: "max_tokens: Field required" } } });
    const byHeader = await post("/v1/messages", anthropicBody("x-api-key works"), anthropicAuth);
    expect({ status: byHeader.status, body: JSON.parse(byHeader.text) }).toMatchObject({ status: 200, body: { type: "message", content: [{ type: "text", text: REPLY }] } });
  });

  it("an unknown model: 404 model_not_found, not_found_error, DeploymentNotFound", async () => {
    const openai = await post("/v1/chat/completions", { ...chatBody("unknown"), model: "gpt-nonexistent" }, openAiAuth);
    expect({ status: openai.status, body: JSON.parse(openai.text) }).toEqual({
      status: 404,
      body: { error: { message: "The model `gpt-nonexistent` does not exist or you do not have access to it.", type: "invalid_request_error", param: null, code: "model_not_found" } },
    });
    const anthropic = await post("/v1/messages", { ...anthropicBody("unknown"), model: "claude-nonexistent" }, anthropicAuth);
    expect({ status: anthropic.status, body: JSON.parse(anthropic.text) }).toMatchObject({ status: 404, body: { type: "error", error: { type: "not_found_error", message: "model: claude-nonexistent" } } });
    const azure = await post("/openai/deployments/no-such-deployment/chat/completions?api-version=2024-10-21", chatBody("unknown"), { "api-key": KEYS.azure });
    expect({ status: azure.status, body: JSON.parse(azure.text) }).toMatchObject({ status: 404, body: { error: { code: "DeploymentNotFound" } } });
  });

  it("Azure without an api-version: 404 Resource not found, as Azure answers", async () => {
    const answer = await post("/openai/deployments/gpt-4o/chat/completions", chatBody("no api-version"), { "api-key": KEYS.azure });
    expect({ status: answer.status, body: JSON.parse(answer.text) }).toEqual({ status: 404, body: { error: { code: "404", message: "Resource not found" } } });
  });

  it("records a header sent twice as both values, so a second credential cannot hide", async () => {
    await rawChunks("/v1/chat/completions", chatBody("twice"), { authorization: [`Bearer ${KEYS.openai}`, "Bearer agent-credential"] });
    expect(callFor("twice").headers.authorization).toEqual([`Bearer ${KEYS.openai}`, "Bearer agent-credential"]);
  });
});

// ---- faults --------------------------------------------------------------------------------------

describe("faults", () => {
  /** Injects `fault`, sends the request, and returns the answer with its recorded call. */
  async function withFault(fault: Fault, pathname: string, body: { messages: { content: string }[] }, headers: http.OutgoingHttpHeaders) {
    provider.injectFault(fault);
    const answer = await post(pathname, body, headers);
    const call = callFor(body.messages[0].content);
    expect(call.fault).toBe(fault);
    return { answer, call };
  }

  it("truncate-before-usage: the connection closes before the final usage, streamed or not", async () => {
    const chat = await withFault("truncate-before-usage", "/v1/chat/completions", chatStreamBody("cut before: chat"), openAiAuth);
    expect(chat.answer).toMatchObject({ status: 200, complete: false });
    expect(jsonEvents(chat.answer.text).map((chunk) => chunk.choices[0].finish_reason).at(-1)).toBe("stop");
    expect(chat.answer.text).not.toContain('"usage":{');
    expect(chat.answer.text).not.toContain("[DONE]");

    const anthropic = await withFault("truncate-before-usage", "/v1/messages", anthropicBody("cut before: anthropic", { stream: true }), anthropicAuth);
    const names = sseEvents(anthropic.answer.text).map((event) => event.event);
    expect(names).toContain("message_start");
    expect(names).not.toContain("message_delta");
    expect(anthropic.answer.complete).toBe(false);

    const whole = await withFault("truncate-before-usage", "/v1/chat/completions", chatBody("cut before: json"), openAiAuth);
    expect(whole.answer.complete).toBe(false);
    expect(Number(whole.answer.headers["content-length"])).toBeGreaterThan(Buffer.byteLength(whole.answer.text));
    expect(whole.answer.text).not.toContain('"usage"');
    for (const { call } of [chat, anthropic, whole]) expect(call.usage).toBeUndefined();
  });

  it("truncate-after-usage: the usage arrives, then the connection closes with no final events", async () => {
    const chat = await withFault("truncate-after-usage", "/v1/chat/completions", chatStreamBody("cut after: chat"), openAiAuth);
    expect(chat.answer.complete).toBe(false);
    expect(fromOpenAi(jsonEvents(chat.answer.text).at(-1).usage)).toEqual(chat.call.usage);
    expect(chat.answer.text).not.toContain("[DONE]");

    const anthropic = await withFault("truncate-after-usage", "/v1/messages", anthropicBody("cut after: anthropic", { stream: true }), anthropicAuth);
    expect(sseEvents(anthropic.answer.text).map((event) => event.event).at(-1)).toBe("message_delta");
    expect(anthropic.answer.complete).toBe(false);
    expect(anthropic.call.usage).toEqual(expectedUsage("anthropic", "/v1/messages", anthropic.call.body));
  });

  it("malformed-json: 200 and a body that is not JSON but holds a usage fragment; a stream request gets a 500 saying why", async () => {
    const { answer, call } = await withFault("malformed-json", "/v1/chat/completions", chatBody("malformed"), openAiAuth);
    expect(answer).toMatchObject({ status: 200, complete: true });
    expect(() => JSON.parse(answer.text)).toThrow();
    expect(answer.text).toContain('"usage":{"prompt_tokens":');
    expect(call.usage).toBeUndefined();

    const misuse = await withFault("malformed-json", "/v1/chat/completions", chatStreamBody("malformed on a stream"), openAiAuth);
    expect(misuse.answer.status).toBe(500);
    expect(JSON.parse(misuse.answer.text).error.message).toContain("malformed-json fault needs a non-streamed request");
  });

  it("garbage-sse: comments, field-less lines, broken JSON and a 70 KiB line among the normal events", async () => {
    const { answer, call } = await withFault("garbage-sse", "/v1/chat/completions", chatStreamBody("garbage"), openAiAuth);
    expect(answer.text).toMatch(/^: /m);
    expect(answer.text).toContain("this line has no colon");
    const events = sseEvents(answer.text);
    expect(events.some((event) => event.data.length >= 70 * 1024)).toBe(true);
    expect(events.filter((event) => event.data !== "[DONE]" && jsonEvents(`data: ${event.data}\n\n`).length === 0).length).toBeGreaterThanOrEqual(2);
    const chunks = jsonEvents(answer.text).filter((data) => data.object === "chat.completion.chunk");
    expect(chunks.flatMap((chunk) => chunk.choices.map((choice: any) => choice.delta.content ?? "")).join("")).toBe(REPLY);
    expect(fromOpenAi(chunks.at(-1).usage)).toEqual(call.usage);
    expect(call.usage).toEqual(expectedUsage("openai", "/v1/chat/completions", call.body));
    expect(events.at(-1)!.data).toBe("[DONE]");
  });

  it("huge-usage: every usage object holds absurd values (valid JSON), and nothing is recorded", async () => {
    const chat = await withFault("huge-usage", "/v1/chat/completions", chatBody("huge json"), openAiAuth);
    expect(JSON.parse(chat.answer.text).usage).toMatchObject({ prompt_tokens: 1e30, completion_tokens: -5, total_tokens: "12", prompt_tokens_details: { audio_tokens: 18446744073709551616 } });
    const anthropic = await withFault("huge-usage", "/v1/messages", anthropicBody("huge stream", { stream: true }), anthropicAuth);
    const events = jsonEvents(anthropic.answer.text);
    expect(events.find((event) => event.type === "message_start").message.usage).toMatchObject({ input_tokens: 1e30, cache_read_input_tokens: "12" });
    expect(events.find((event) => event.type === "message_delta").usage).toMatchObject({ output_tokens: 18446744073709551616, cache_creation: { nested: [Infinity] } });
    for (const { call } of [chat, anthropic]) expect(call.usage).toBeUndefined();
  });

  it("split-bytes: one byte per chunk on the wire, and the official client still reads the stream and its usage", async () => {
    provider.injectFault("split-bytes");
    const raw = await rawChunks("/v1/messages", anthropicBody("split raw", { stream: true }), anthropicAuth);
    expect(raw.head).toMatch(/transfer-encoding: chunked/i);
    expect(raw.sizes.at(-1)).toBe(0);
    expect(new Set(raw.sizes.slice(0, -1))).toEqual(new Set([1]));
    const events = jsonEvents(raw.data);
    expect(events.map((event) => event.type).at(-1)).toBe("message_stop");
    const usage = { ...events[0].message.usage, output_tokens: events.find((event) => event.type === "message_delta").usage.output_tokens };
    expect(fromAnthropic(usage)).toEqual(callFor("split raw").usage);

    provider.injectFault("split-bytes");
    const client = new OpenAI({ apiKey: KEYS.openai, baseURL: `${provider.url}/v1`, maxRetries: 0 });
    const stream = await client.chat.completions.create(chatStreamBody("split client"));
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(callFor("split client").fault).toBe("split-bytes");
    expectPredicted(callFor("split client"), fromOpenAi(chunks.at(-1)!.usage));
  });

  it("error-500: each provider's own server error; faults queue in order, and a refused request uses none", async () => {
    provider.injectFault("error-500");
    provider.injectFault("error-500");
    provider.injectFault("error-500");
    const refused = await post("/v1/chat/completions", chatBody("500 refused"), { authorization: "Bearer wrong" });
    expect(refused.status).toBe(401);
    const openai = await post("/v1/chat/completions", chatBody("500 openai"), openAiAuth);
    expect({ status: openai.status, body: JSON.parse(openai.text) }).toEqual({
      status: 500,
      body: { error: { message: "The server had an error while processing your request. Sorry about that!", type: "server_error", param: null, code: null } },
    });
    const anthropic = await post("/v1/messages", anthropicBody("500 anthropic"), anthropicAuth);
    expect({ status: anthropic.status, body: JSON.parse(anthropic.text) }).toMatchObject({ status: 500, body: { type: "error", error: { type: "api_error" } } });
    const azure = await post(AZURE_CHAT, chatBody("500 azure"), { "api-key": KEYS.azure });
    expect({ status: azure.status, body: JSON.parse(azure.text) }).toMatchObject({ status: 500, body: { error: { type: "server_error" } } });
    for (const marker of ["500 openai", "500 anthropic", "500 azure"]) expect(callFor(marker)).toMatchObject({ status: 500, fault: "error-500", usage: undefined });
    const after = await post("/v1/chat/completions", chatBody("after the faults"), openAiAuth);
    expect(after.status).toBe(200);
    expect(callFor("after the faults").fault).toBeUndefined();
  });
});
