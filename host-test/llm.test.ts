// The LLM filter (build/llm_filter.wasm, assembly/llm/): an agent's call to a provider through the
// sidecar, top to bottom. The caller is verified, its own keys never go on, the provider's
// credential comes from L1/L2/L3 like any credential, the model and the budget are checked on the
// whole body, a completions stream is made to report its usage, and the answer's usage (read as
// it streams past, never changed) is recorded once: a row (GET /v1/llm/usage), metrics, a log line.

import { describe, expect, it } from "vitest";
import { Action, type HttpStream } from "./host/index.ts";
import { AGENT, expectInjectorCall, INJECTOR, L2_CONFIG } from "./support/exchange.ts";
import {
  ADMIN,
  answer,
  answerLlmInjector,
  expectLlmError,
  expectNothingUpstream,
  getUsage,
  injectorCalls,
  jwtMetadata,
  llmCredential,
  type LlmSection,
  llmPath,
  mtlsPeer,
  type Provider,
  type Recorded,
  rowMetrics,
  rowNames,
  seedL1,
  sendLlm,
  sse,
  startLlmFilter,
  usageLogs,
  usageRow,
} from "./support/llm.ts";

const DP = AGENT.dataPipeline;
const CHAT = { model: "gpt-4o", messages: [{ role: "user", content: "Say hi" }] };
const AGENT_KEYS: [string, string][] = [
  ["authorization", "Bearer sk-agent-own-key"],
  ["x-api-key", "sk-ant-agent-own"],
  ["api-key", "azure-agent-own"],
];

function row(requests: number, input: number, cached: number, write: number, output: number, cost: number): Recorded {
  return { requests, input_tokens: input, cached_input_tokens: cached, cache_write_tokens: write, output_tokens: output, cost_nanousd: cost };
}

/** The agent's call goes to the provider with the sidecar's credential (from L3 here), nothing else. */
function throughL3(provider: Provider, options: Parameters<typeof sendLlm>[1] & { llm?: LlmSection; models?: string } = {}) {
  const filter = startLlmFilter(options.llm);
  const stream = sendLlm(filter.vm, { provider, ...options });
  const issued = llmCredential(provider, { models: options.models });
  answerLlmInjector(filter.host, provider, issued, options.mtls ?? DP);
  return { ...filter, stream, issued };
}

function expectForwardedWith(stream: HttpStream, authHeader: string, value: string): void {
  const forwarded = stream.forwardedRequest!;
  expect(forwarded.ended).toBe(true);
  const headers = forwarded.headers;
  expect(headers.getAll(authHeader)).toEqual([value]);
  for (const name of ["authorization", "x-api-key", "api-key"].filter((name) => name !== authHeader)) expect(headers.getAll(name)).toEqual([]);
  expect(headers.getAll("content-length")).toEqual([]);
  expect(headers.entries().filter(([name]) => name.startsWith("x-hexr-"))).toEqual([]);
}

describe("the LLM route: happy paths", () => {
  it("openai chat (L3): the injector is asked for llm_openai/global, the key goes in authorization, body and answer pass untouched", () => {
    const filter = startLlmFilter();
    const body = JSON.stringify(CHAT);
    const stream = sendLlm(filter.vm, { body, headers: [...AGENT_KEYS, ["x-hexr-spiffe-id", AGENT.otherTenant]] });
    // Paused for the credential: Envoy holds the body back from the filter (stop all iteration).
    expect(stream.callbacks).toEqual([{ callback: "proxy_on_request_headers", action: Action.Pause }]);
    expect(stream.forwardedRequest).toBeUndefined();
    const call = expectInjectorCall(filter.host, { spiffeId: DP, source: "mtls", service: "llm_openai", region: "global" });
    const issued = llmCredential("openai");
    call.respond({ status: 200, headers: { "content-type": "application/json", "x-hexr-expires-at": String(issued.expiresAt) }, body: issued.body });
    expect(stream.continueCalls.request).toBe(1);
    expectForwardedWith(stream, "authorization", `Bearer ${issued.secret}`);
    expect(stream.forwardedRequest!.bodyText).toBe(body);

    const reply = JSON.stringify({
      id: "chatcmpl-1", object: "chat.completion", model: "gpt-4o-2024-08-06",
      choices: [{ index: 0, message: { role: "assistant", content: "Hi!" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 1200, completion_tokens: 30, total_tokens: 1230, prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 } },
    }, null, 2);
    answer(stream, { body: reply, splits: [100, 101, 300] });
    expect(stream.state).toBe("complete");
    expect(stream.response!.source).toBe("upstream");
    expect(stream.response!.bodyText).toBe(reply);
    expect(stream.response!.headers.getAll("x-hexr-spiffe-id")).toEqual([DP]);
    // gpt-4o: 2.5 / 1.25 / 10 USD per 1M = 2500 / 1250 / 10000 nano-USD per token.
    // (1200 − 1024) × 2500 + 1024 × 1250 + 30 × 10000 = 440000 + 1280000 + 300000
    const cost = 2_020_000;
    expect(usageRow(filter.host, DP, "openai", "gpt-4o")).toEqual(row(1, 1200, 1024, 0, 30, cost));
    expect(rowMetrics(filter.host, DP, "openai", "gpt-4o")).toEqual({ requests: 1, input_tokens: 1200, cached_input_tokens: 1024, cache_write_tokens: 0, output_tokens: 30, cost_nanousd: cost });
    expect(usageLogs(filter.host)).toEqual([{
      spiffe_id: DP, provider: "openai", model: "gpt-4o", status: 200, stream: false, usage_seen: true,
      input_tokens: 1200, cached_input_tokens: 1024, cache_write_tokens: 0, output_tokens: 30, cost_nanousd: cost, priced: true,
    }]);
    for (const record of filter.host.logs) expect(record.message).not.toContain(issued.secret);
  });

  it("the second call is an L1 hit: no injector call, the headers go on at once, the row adds up", () => {
    const { host, vm, issued, stream: first } = throughL3("openai", { body: CHAT });
    answer(first, { body: JSON.stringify({ usage: { prompt_tokens: 10, completion_tokens: 5 } }) });
    const second = sendLlm(vm, { body: CHAT, headers: AGENT_KEYS });
    expect(second.callbacks[0]).toEqual({ callback: "proxy_on_request_headers", action: Action.Continue });
    expect(injectorCalls(host)).toEqual([]);
    expect(host.httpCalls.length).toBe(1);
    expectForwardedWith(second, "authorization", `Bearer ${issued.secret}`);
    answer(second, { body: JSON.stringify({ usage: { prompt_tokens: 20, completion_tokens: 7 } }) });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(2, 30, 0, 0, 12, 30 * 2500 + 12 * 10000));
  });

  it("a body that arrives after the credential is read then", () => {
    const filter = startLlmFilter();
    const stream = filter.vm.newHttpStream({ properties: mtlsPeer(DP) });
    const body = JSON.stringify(CHAT);
    stream.sendRequestHeaders({ ":method": "POST", ":path": llmPath("openai", "/v1/chat/completions"), ":authority": "x", ":scheme": "http", "content-type": "application/json" });
    const issued = llmCredential("openai");
    answerLlmInjector(filter.host, "openai", issued);
    expect(stream.forwardedRequest!.ended).toBe(false);
    stream.sendRequestBody(body.slice(0, 10), { endOfStream: false });
    stream.sendRequestBody(body.slice(10));
    expectForwardedWith(stream, "authorization", `Bearer ${issued.secret}`);
    expect(stream.forwardedRequest!.bodyText).toBe(body);
  });

  it("a JWT-SVID caller: its token goes to the injector, never to the provider", () => {
    const filter = startLlmFilter();
    const stream = sendLlm(filter.vm, { body: CHAT, properties: jwtMetadata({ sub: AGENT.reporter, iss: "spiffe://hexr.local" }), headers: [["authorization", "Bearer eyJ.agent.jwt"]] });
    const call = expectInjectorCall(filter.host, { spiffeId: AGENT.reporter, source: "jwt", service: "llm_openai", region: "global", authorization: "Bearer eyJ.agent.jwt" });
    const issued = llmCredential("openai", { spiffeId: AGENT.reporter });
    call.respond({ status: 200, headers: { "content-type": "application/json" }, body: issued.body });
    expectForwardedWith(stream, "authorization", `Bearer ${issued.secret}`);
  });

  it("openai chat stream: the body gains stream_options.include_usage as its first member, byte for byte", () => {
    const body = '  {"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"{\\"a\\":1}"}]}';
    const { host, stream } = throughL3("openai", { body, splits: [5, 20] });
    expect(stream.forwardedRequest!.bodyText).toBe('  {"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"{\\"a\\":1}"}]}');
    expect(stream.forwardedRequest!.headers.getAll("content-length")).toEqual([]);
    const events = sse([
      { id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { role: "assistant", content: "" } }], usage: null },
      { id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "Hi" } }], usage: null },
      { id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: null },
      { id: "c1", object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, prompt_tokens_details: { cached_tokens: 0 } } },
      "[DONE]",
    ]);
    answer(stream, { sse: true, body: events, splits: [7, 50, 51, 200] });
    expect(stream.response!.bodyText).toBe(events);
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 9, 0, 0, 2, 9 * 2500 + 2 * 10000));
    expect(usageLogs(host)[0]).toMatchObject({ stream: true, usage_seen: true });
  });

  it("legacy completions and Azure chat streams are rewritten too; a stream that asks for usage itself, responses and messages streams are not", () => {
    const rewritten = (provider: Provider, endpoint: string, body: string) => throughL3(provider, { endpoint, body }).stream.forwardedRequest!.bodyText;
    expect(rewritten("openai", "/v1/completions", '{"model":"gpt-4o-mini","prompt":"x","stream":true}')).toBe('{"stream_options":{"include_usage":true},"model":"gpt-4o-mini","prompt":"x","stream":true}');
    expect(rewritten("azure_openai", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", '{"stream":true,"messages":[]}')).toBe('{"stream_options":{"include_usage":true},"stream":true,"messages":[]}');
    expect(rewritten("azure_openai", "/openai/deployments/gpt-4o/completions", '{"stream":true,"prompt":"x"}')).toBe('{"stream_options":{"include_usage":true},"stream":true,"prompt":"x"}');
    for (const [provider, endpoint, body] of [
      ["openai", "/v1/chat/completions", '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}'],
      ["openai", "/v1/chat/completions", '{"model":"gpt-4o","stream":false,"messages":[]}'],
      ["openai", "/v1/responses", '{"model":"gpt-4o","stream":true,"input":"x"}'],
      ["anthropic", "/v1/messages", '{"model":"claude-sonnet-4-5","stream":true,"max_tokens":10,"messages":[]}'],
      ["azure_openai", "/openai/deployments/emb/embeddings", '{"input":"x"}'],
    ] as const) {
      expect(rewritten(provider, endpoint, body), `${provider}${endpoint}`).toBe(body);
    }
  });

  it("responses API stream: the usage of response.completed is recorded (response.created's usage is null)", () => {
    const { host, stream } = throughL3("openai", { endpoint: "/v1/responses", body: { model: "gpt-4o", stream: true, input: "hi" } });
    const response = { id: "resp_1", object: "response", model: "gpt-4o", status: "in_progress", output: [], tools: [], usage: null };
    const events = sse([
      { event: "response.created", data: { type: "response.created", sequence_number: 0, response } },
      { event: "response.output_text.delta", data: { type: "response.output_text.delta", sequence_number: 1, delta: "Hi" } },
      { event: "response.completed", data: { type: "response.completed", sequence_number: 2, response: { ...response, status: "completed", usage: { input_tokens: 100, input_tokens_details: { cached_tokens: 40 }, output_tokens: 20, output_tokens_details: { reasoning_tokens: 5 }, total_tokens: 120 } } } },
    ]);
    answer(stream, { sse: true, body: events });
    // (100 − 40) × 2500 + 40 × 1250 + 20 × 10000
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 100, 40, 0, 20, 400_000));
  });

  it("embeddings: prompt tokens only", () => {
    const { host, stream } = throughL3("openai", { endpoint: "/v1/embeddings", body: { model: "text-embedding-3-small", input: "hello" } });
    answer(stream, { body: JSON.stringify({ object: "list", data: [{ object: "embedding", index: 0, embedding: [0.1, -0.2] }], model: "text-embedding-3-small", usage: { prompt_tokens: 8, total_tokens: 8 } }) });
    expect(usageRow(host, DP, "openai", "text-embedding-3-small")).toEqual(row(1, 8, 0, 0, 0, 8 * 20));
  });

  it("anthropic messages stream: x-api-key; input and cache counts from message_start, the cumulative output from message_delta", () => {
    const { host, stream, issued } = throughL3("anthropic", { body: { model: "claude-sonnet-4-5", max_tokens: 1024, stream: true, messages: [{ role: "user", content: "hi" }] }, headers: AGENT_KEYS });
    expectForwardedWith(stream, "x-api-key", issued.secret);
    const events = sse([
      { event: "message_start", data: { type: "message_start", message: { id: "msg_1", type: "message", role: "assistant", model: "claude-sonnet-4-5", content: [], stop_reason: null, usage: { input_tokens: 25, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000, output_tokens: 1 } } } },
      { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
      { event: "ping", data: { type: "ping" } },
      { event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hello" } } },
      { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
      { event: "message_delta", data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 57 } } },
      { event: "message_stop", data: { type: "message_stop" } },
    ]);
    answer(stream, { sse: true, body: events, splits: [3, 90, 400] });
    expect(stream.response!.bodyText).toBe(events);
    // input = 25 + 1000 read + 100 written. claude-sonnet-4-5: 3 / 0.3 / 3.75 / 15 USD per 1M
    // 25 × 3000 + 1000 × 300 + 100 × 3750 + 57 × 15000 = 75000 + 300000 + 375000 + 855000
    expect(usageRow(host, DP, "anthropic", "claude-sonnet-4-5")).toEqual(row(1, 1125, 1000, 100, 57, 1_605_000));
  });

  it("anthropic non-stream answer with usage at the top", () => {
    const { host, stream } = throughL3("anthropic", { body: { model: "claude-sonnet-4-5", max_tokens: 10, messages: [] } });
    answer(stream, { body: JSON.stringify({ id: "msg", type: "message", content: [{ type: "text", text: "\"usage\":{\"input_tokens\":0}" }], usage: { input_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 3, output_tokens: 2 } }) });
    expect(usageRow(host, DP, "anthropic", "claude-sonnet-4-5")).toEqual(row(1, 10, 3, 0, 2, 7 * 3000 + 3 * 300 + 2 * 15000));
  });

  it("azure chat: the Entra token in authorization (L3 for azure_openai in the default Azure region), the deployment is the model", () => {
    const filter = startLlmFilter();
    const stream = sendLlm(filter.vm, { provider: "azure_openai", body: { messages: [{ role: "user", content: "hi" }] }, headers: AGENT_KEYS });
    const call = expectInjectorCall(filter.host, { spiffeId: DP, source: "mtls", service: "azure_openai", region: "eastus" });
    const issued = llmCredential("azure_openai");
    call.respond({ status: 200, headers: { "content-type": "application/json" }, body: issued.body });
    expectForwardedWith(stream, "authorization", `Bearer ${issued.secret}`);
    expect(stream.forwardedRequest!.headers.get(":path")).toBe("/v1/llm/azure_openai/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21");
    answer(stream, { body: JSON.stringify({ choices: [], usage: { prompt_tokens: 4, completion_tokens: 1, total_tokens: 5 } }) });
    expect(usageRow(filter.host, DP, "azure_openai", "gpt-4o")).toEqual(row(1, 4, 0, 0, 1, 4 * 2500 + 10000));
  });

  it("an L2 hit: the bridge's entry, no injector call", () => {
    const filter = startLlmFilter({}, { l2: L2_CONFIG });
    const stream = sendLlm(filter.vm, { body: CHAT });
    const [lookup] = filter.host.pendingHttpCalls();
    expect([lookup.cluster, lookup.method]).toEqual(["hexr_bridge", "GET"]);
    expect(decodeURIComponent(lookup.path!)).toBe(`/v1/cred/cred:${DP}:llm_openai:global`);
    const issued = llmCredential("openai");
    lookup.respond({ status: 200, headers: { "content-type": "application/octet-stream" }, body: `${issued.expiresAt},${filter.host.clock.nowSeconds - 30}\n${issued.body}` });
    expectForwardedWith(stream, "authorization", `Bearer ${issued.secret}`);
    expect(filter.host.httpCalls.filter((call) => call.cluster === INJECTOR.cluster)).toEqual([]);
  });

  it("request trailers end the body: it is read then (L1 hit and L3)", () => {
    for (const l1 of [true, false]) {
      const filter = startLlmFilter();
      const issued = llmCredential("openai");
      if (l1) seedL1(filter.host, "openai", issued);
      const stream = filter.vm.newHttpStream({ properties: mtlsPeer(DP) });
      stream.sendRequestHeaders({ ":method": "POST", ":path": llmPath("openai", "/v1/chat/completions"), ":authority": "x", ":scheme": "http", "content-type": "application/json" });
      stream.sendRequestBody('{"model":"gpt-4o",', { endOfStream: false });
      stream.sendRequestBody('"stream":true}', { endOfStream: false });
      stream.sendRequestTrailers({ "x-trailer": "1" });
      if (!l1) answerLlmInjector(filter.host, "openai", issued);
      expectForwardedWith(stream, "authorization", `Bearer ${issued.secret}`);
      expect(stream.forwardedRequest!.bodyText).toBe('{"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true}');
    }
  });

  it("two workers (VMs) add to the same row", () => {
    const filter = startLlmFilter();
    const second = filter.host.startVm();
    seedL1(filter.host, "openai", llmCredential("openai"));
    const a = sendLlm(filter.vm, { body: CHAT });
    const b = sendLlm(second, { body: CHAT });
    answer(b, { body: JSON.stringify({ usage: { prompt_tokens: 1, completion_tokens: 2 } }) });
    answer(a, { body: JSON.stringify({ usage: { prompt_tokens: 10, completion_tokens: 20 } }) });
    expect(usageRow(filter.host, DP, "openai", "gpt-4o")).toEqual(row(2, 11, 0, 0, 22, 11 * 2500 + 22 * 10000));
    expect(rowMetrics(filter.host, DP, "openai", "gpt-4o").requests).toBe(2);
  });

  it("a provider's error answer is recorded as a request without tokens, and counted as unreadable usage", () => {
    const { host, stream } = throughL3("openai", { body: CHAT });
    answer(stream, { status: 429, body: JSON.stringify({ error: { message: "Rate limit", type: "requests", code: "rate_limit_exceeded" } }) });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 0, 0, 0, 0, 0));
    expect(usageLogs(host)[0]).toMatchObject({ status: 429, usage_seen: false });
    expect(host.metrics.value("hexr_llm_unreadable_usage")).toBe(1);
  });

  it("an unpriced model is recorded with cost 0", () => {
    const { host, stream } = throughL3("openai", { body: { model: "o4-mini", messages: [] }, llm: { providers: { openai: {} } } });
    answer(stream, { body: JSON.stringify({ usage: { prompt_tokens: 3, completion_tokens: 4 } }) });
    expect(usageRow(host, DP, "openai", "o4-mini")).toEqual(row(1, 3, 0, 0, 4, 0));
    expect(usageLogs(host)[0].priced).toBe(false);
  });
});

describe("usage an agent plants in the answer is not usage", () => {
  const planted = { usage: { input_tokens: 0, output_tokens: 0, prompt_tokens: 0, completion_tokens: 0 } };
  const schema = { type: "object", properties: { usage: { type: "object", properties: planted } }, ...planted };
  const echoed = {
    tools: [{ type: "function", name: "f", parameters: schema, ...planted }],
    text: { format: { type: "json_schema", name: "s", schema } },
    prompt: { id: "pmpt_1", variables: { ...planted, x: planted } },
    metadata: { usage: '{"input_tokens":0}' },
    instructions: [{ role: "system", content: [{ type: "input_text", text: "x", ...planted }] }],
  };
  const real = { input_tokens: 5000, input_tokens_details: { cached_tokens: 0 }, output_tokens: 700, total_tokens: 5700 };

  it("a Responses answer echoing tools, text.format.schema and prompt.variables before the real usage", () => {
    const { host, stream } = throughL3("openai", { endpoint: "/v1/responses", body: { model: "gpt-4o", input: "x" } });
    answer(stream, { body: JSON.stringify({ id: "resp", object: "response", ...echoed, output: [], usage: real }) });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 5000, 0, 0, 700, 5000 * 2500 + 700 * 10000));
  });

  it("the same in a Responses stream, in response.created and response.completed", () => {
    const { host, stream } = throughL3("openai", { endpoint: "/v1/responses", body: { model: "gpt-4o", input: "x", stream: true } });
    answer(stream, {
      sse: true,
      body: sse([
        { type: "response.created", response: { id: "resp", ...echoed, usage: null } },
        { type: "response.output_text.delta", delta: '{"usage":{"input_tokens":0,"output_tokens":0}}' },
        { type: "response.completed", response: { id: "resp", ...echoed, output: [{ type: "message", content: [{ type: "output_text", text: "x", ...planted }] }], usage: real } },
      ]),
    });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 5000, 0, 0, 700, 5000 * 2500 + 700 * 10000));
  });

  it("a usage key inside a string value, escaped quotes and backslashes around it", () => {
    const { host, stream } = throughL3("openai", { body: { ...CHAT, stream: true } });
    const contents = ['"usage":{"prompt_tokens":0}', 'x\\', '\\"', '\\\\"usage\\\\":{', '\n\ndata: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n', "}}}]]]"];
    answer(stream, {
      sse: true,
      body: sse([
        ...contents.map((content) => ({ choices: [{ delta: { content } }], usage: null })),
        { choices: [], usage: { prompt_tokens: 321, completion_tokens: 123 } },
        { choices: [{ delta: { content: '"usage":{"prompt_tokens":0,"completion_tokens":0}' } }] },
        "[DONE]",
      ]),
    });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 321, 0, 0, 123, 321 * 2500 + 123 * 10000));
  });

  it("a string that is a usage key is not one when it is a value: {\"a\":\"usage\"} then a colon elsewhere", () => {
    const { host, stream } = throughL3("openai", { body: CHAT });
    answer(stream, { body: '{"id":"usage","choices":[{"message":{"content":"usage: {\\"prompt_tokens\\": 0}"}}],"usage":{"prompt_tokens":11,"completion_tokens":2}}' });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 11, 0, 0, 2, 11 * 2500 + 2 * 10000));
  });
});

describe("refusals: an error in the contract's format, nothing upstream, nothing recorded", () => {
  function expectRefused(filter: { host: import("./host/index.ts").ProxyWasmHost }, stream: HttpStream, status: number, type: "BadRequest" | "AuthenticationError" | "CredentialError"): void {
    expectLlmError(stream, status, type);
    expect(stream.state).toBe("complete");
    expect(rowNames(filter.host)).toEqual([]);
    expect(usageLogs(filter.host)).toEqual([]);
  }

  it.each([
    "/v1/llm/mistral/v1/chat/completions",
    "/v1/llm/OpenAI/v1/chat/completions",
    "/v1/llm/openai",
    "/v1/llm/openai/",
    "/v1/llm/",
    "/v1/llm",
    "/v1/llm/openai/v1/models",
    "/v1/llm/openai/v1/files",
    "/v1/llm/openai/v1/chat/completions/",
    "/v1/llm/openai//v1/chat/completions",
    "/v1/llm/openai/v1/../v1/chat/completions",
    "/v1/llm/openai/v1/chat/completions/../../files",
    "/v1/llm/openai/v1/chat/completions/..",
    "/v1/llm/openai/v1/chat/./completions",
    "/v1/llm/anthropic/v1/messages/batches",
    "/v1/llm/anthropic/v1/chat/completions",
    "/v1/llm/azure_openai/openai/deployments/../chat/completions",
    "/v1/llm/azure_openai/openai/deployments/./chat/completions",
    "/v1/llm/azure_openai/openai/deployments/%2e%2e/chat/completions",
    "/v1/llm/azure_openai/openai/deployments/a/b/chat/completions",
    "/v1/llm/azure_openai/openai/deployments/a/../chat/completions",
    "/v1/llm/azure_openai/openai/deployments//chat/completions",
    "/v1/llm/azure_openai/openai/deployments/gpt-4o;x/chat/completions",
    "/v1/llm/azure_openai/openai/deployments/gpt-4o/files",
    "/v1/llm/usage/x",
  ])("%s → 404", (path) => {
    const filter = startLlmFilter();
    const stream = sendLlm(filter.vm, { path, body: CHAT });
    expectRefused(filter, stream, 404, "BadRequest");
    expect(filter.host.httpCalls).toEqual([]);
  });

  it("a provider this sidecar does not serve → 404", () => {
    const filter = startLlmFilter({ providers: { openai: {} } });
    const stream = sendLlm(filter.vm, { provider: "anthropic", body: { model: "claude-sonnet-4-5", messages: [] } });
    expectRefused(filter, stream, 404, "BadRequest");
    expect(filter.host.httpCalls).toEqual([]);
  });

  it("GET → 405 with allow: POST; a non-JSON content type → 415; content-length over max_request_bytes → 413", () => {
    const filter = startLlmFilter({ max_request_bytes: 1024 });
    const get = sendLlm(filter.vm, { method: "GET", body: "" });
    expectRefused(filter, get, 405, "BadRequest");
    expect(get.response!.headers.getAll("allow")).toEqual(["POST"]);
    expectRefused(filter, sendLlm(filter.vm, { contentType: "text/plain", body: CHAT }), 415, "BadRequest");
    expectRefused(filter, sendLlm(filter.vm, { body: { ...CHAT, pad: "x".repeat(1100) } }), 413, "BadRequest");
    expect(filter.host.httpCalls).toEqual([]);
  });

  it("a body over max_request_bytes without content-length → 413, L1 hit or L3", () => {
    const filter = startLlmFilter({ max_request_bytes: 1024 });
    const big = { ...CHAT, pad: "x".repeat(1100) };
    const l3 = sendLlm(filter.vm, { body: big, contentLength: false, splits: [500, 1000] });
    answerLlmInjector(filter.host, "openai", llmCredential("openai"));
    expectRefused(filter, l3, 413, "BadRequest");
    const l1 = sendLlm(filter.vm, { body: big, contentLength: false, splits: [500, 1000] });
    expectRefused(filter, l1, 413, "BadRequest");
  });

  it("no identity → 401; two authorization headers → 401; the listener's static identity → 403", () => {
    const filter = startLlmFilter();
    expectRefused(filter, sendLlm(filter.vm, { body: CHAT, properties: {} }), 401, "AuthenticationError");
    expectRefused(filter, sendLlm(filter.vm, { body: CHAT, headers: [["authorization", "Bearer a"], ["authorization", "Bearer b"]] }), 401, "AuthenticationError");
    expect(filter.host.httpCalls).toEqual([]);
    const listener = startLlmFilter({}, { identity_sources: ["mtls", "static"], static_spiffe_id: AGENT.reporter });
    expectRefused(listener, sendLlm(listener.vm, { body: CHAT, properties: {} }), 403, "CredentialError");
    expect(listener.host.httpCalls).toEqual([]);
  });

  // `resources` is the agent's declared cloud tools (@hexr_agent(resources=...)); the seeds' agents
  // call hexr_llm without declaring it, so the route's authority is OPA's llm_* grant alone.
  it("the local resources allow-list (cloud tools) does not decide: the injector (OPA) is asked", () => {
    const filter = startLlmFilter({}, { resources: { "acme-corp/data-pipeline": ["aws_s3"] } });
    sendLlm(filter.vm, { body: CHAT });
    expect(injectorCalls(filter.host).length).toBe(1);
  });

  it("the injector's refusal and a malformed credential reach the agent; nothing goes on", () => {
    const filter = startLlmFilter();
    const denied = sendLlm(filter.vm, { body: CHAT });
    injectorCalls(filter.host)[0].respond({ status: 403, headers: { "content-type": "application/json" }, body: '{"error":{"type":"CredentialError","message":"denied by policy"}}' });
    expectRefused(filter, denied, 403, "CredentialError");
    const other = startLlmFilter();
    const malformed = sendLlm(other.vm, { body: CHAT });
    injectorCalls(other.host)[0].respond({ status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify({ credentials: { api_key: "k" }, expires_at: 4102444800 }) });
    expectLlmError(malformed, 502, "CredentialError");
    expect(usageLogs(other.host)).toEqual([]);
  });

  it("a model this sidecar does not serve → 403; a model not granted by the credential's models → 403; a granted one goes on", () => {
    const served = throughL3("openai", { body: { model: "gpt-3.5-turbo", messages: [] } });
    expectRefused(served, served.stream, 403, "CredentialError");
    const notGranted = throughL3("openai", { body: CHAT, models: "gpt-4o-mini" });
    expectRefused(notGranted, notGranted.stream, 403, "CredentialError");
    const prefix = throughL3("openai", { body: { model: "gpt-4o", messages: [] }, models: "gpt-4o-mini gpt-4" });
    expectRefused(prefix, prefix.stream, 403, "CredentialError");
    const granted = throughL3("openai", { body: CHAT, models: "gpt-4o-mini gpt-4o" });
    expect(granted.stream.forwardedRequest!.ended).toBe(true);
    const azure = throughL3("azure_openai", { endpoint: "/openai/deployments/gpt-35/chat/completions", body: { messages: [] }, llm: { providers: { azure_openai: { models: ["gpt-4o"] } } } });
    expectRefused(azure, azure.stream, 403, "CredentialError");
  });

  it.each([
    ["not JSON", "model=gpt-4o"],
    ["a JSON array", "[]"],
    ["truncated JSON", '{"model":"gpt-4o"'],
    ["no model", '{"messages":[]}'],
    ["a model that is not a name", '{"model":"gpt-4o\\n","messages":[]}'],
    ["a model that is not a string", '{"model":4,"messages":[]}'],
    ["duplicate model members", '{"model":"gpt-4o-mini","model":"gpt-4o"}'],
    ["duplicate model members, one escaped", '{"model":"gpt-4o-mini","mod\\u0065l":"gpt-4o"}'],
    ["stream_options without include_usage", '{"model":"gpt-4o","stream":true,"stream_options":{}}'],
    ["stream_options.include_usage false", '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false}}'],
    ["stream_options.include_usage \"true\"", '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":"true"}}'],
  ])("a body with %s → 400", (_, body) => {
    const filter = throughL3("openai", { body, models: "gpt-4o-mini gpt-4o" });
    expectRefused(filter, filter.stream, 400, "BadRequest");
  });

  it("every refusal before the provider counts in hexr_llm_refused", () => {
    const filter = startLlmFilter();
    sendLlm(filter.vm, { method: "GET", body: "" });
    sendLlm(filter.vm, { body: CHAT, properties: {} });
    expect(filter.host.metrics.value("hexr_llm_refused")).toBe(2);
  });

  it("an empty body → 400", () => {
    const filter = startLlmFilter();
    expectRefused(filter, sendLlm(filter.vm, { body: "" }), 400, "BadRequest");
  });

  it("a spent budget → 429 with retry-after until the window ends; the next window is open again (virtual clock)", () => {
    const filter = startLlmFilter({
      budgets: [{ spiffe_ids: "spiffe://hexr.local/agent/acme-corp/data-pipeline/*", window_seconds: 60, max_tokens: 100 }],
    });
    seedL1(filter.host, "openai", llmCredential("openai"));
    const first = sendLlm(filter.vm, { body: CHAT });
    filter.host.advance(10_000);
    answer(first, { body: JSON.stringify({ usage: { prompt_tokens: 90, completion_tokens: 20 } }) });
    filter.host.advance(5_000);
    const refused = sendLlm(filter.vm, { body: CHAT });
    expectLlmError(refused, 429, "CredentialError");
    expect(refused.response!.headers.getAll("retry-after")).toEqual(["45"]);
    expect(filter.host.metrics.value("hexr_llm_budget_refused")).toBe(1);
    expect(usageRow(filter.host, DP, "openai", "gpt-4o")!.requests).toBe(1);
    expect(usageLogs(filter.host).length).toBe(1);
    // Another identity has its own budget.
    seedL1(filter.host, "openai", llmCredential("openai"), AGENT.dataPipelineWorker);
    expect(sendLlm(filter.vm, { body: CHAT, mtls: AGENT.dataPipelineWorker }).forwardedRequest!.ended).toBe(true);
    filter.host.advance(45_000);
    const next = sendLlm(filter.vm, { body: CHAT });
    expect(next.forwardedRequest!.ended).toBe(true);
    expect(next.response).toBeUndefined();
  });

  it("a cost budget counts nano-USD", () => {
    const filter = startLlmFilter({ budgets: [{ spiffe_ids: DP, window_seconds: 3600, max_cost_usd: 0.0016 }] });
    seedL1(filter.host, "anthropic", llmCredential("anthropic"));
    const body = { model: "claude-sonnet-4-5", max_tokens: 10, messages: [] };
    const first = sendLlm(filter.vm, { provider: "anthropic", body });
    answer(first, { body: JSON.stringify({ usage: { input_tokens: 100, output_tokens: 100 } }) }); // 300000 + 1500000 = 1.8 mUSD
    expect(usageRow(filter.host, DP, "anthropic", "claude-sonnet-4-5")!.cost_nanousd).toBe(1_800_000);
    expectLlmError(sendLlm(filter.vm, { provider: "anthropic", body }), 429, "CredentialError");
  });
});

describe("what the answer's usage depends on", () => {
  // OpenAI and Anthropic compress JSON answers on request (httpx, under openai-python and
  // anthropic-python, sends "accept-encoding: gzip, deflate" by default): a compressed answer's
  // usage could not be read, nor charged to a budget.
  it("the provider is not asked for a compressed answer", () => {
    const { stream } = throughL3("openai", { body: CHAT, headers: [["accept-encoding", "gzip, deflate, br"]] });
    expect(stream.forwardedRequest!.headers.getAll("accept-encoding")).toEqual([]);
  });

  it("usage whose object opens on the next line is read", () => {
    const { host, stream } = throughL3("openai", { body: CHAT });
    answer(stream, { body: '{\n  "usage":\n  {\n    "prompt_tokens": 5,\n    "completion_tokens": 6\n  }\n}' });
    expect(usageRow(host, DP, "openai", "gpt-4o")).toEqual(row(1, 5, 0, 0, 6, 5 * 2500 + 6 * 10000));
  });

  // With allow_on_headers_stop_iteration (which envoy/ does not set) a Pause from the headers lets
  // the body through before the credential: the filter then refuses rather than check the model
  // against a grant it does not have yet, and nothing leaves.
  it("a body that arrives before the credential is refused, and nothing goes upstream", () => {
    const filter = startLlmFilter({}, {}, { allowOnHeadersStopIteration: true });
    const stream = sendLlm(filter.vm, { body: CHAT });
    expectLlmError(stream, 503, "CredentialError");
    expect(stream.forwardedRequest?.ended ?? false).toBe(false);
  });
});

describe("GET /v1/llm/usage", () => {
  function recordFor(filter: ReturnType<typeof startLlmFilter>, spiffeId: string, prompt: number, completion: number): void {
    const stream = sendLlm(filter.vm, { body: CHAT, mtls: spiffeId });
    answer(stream, { body: JSON.stringify({ usage: { prompt_tokens: prompt, completion_tokens: completion } }) });
  }

  it("an admin sees every identity's rows, another caller only its own; GET only", () => {
    const filter = startLlmFilter();
    for (const id of [DP, AGENT.reporter]) seedL1(filter.host, "openai", llmCredential("openai"), id);
    recordFor(filter, DP, 10, 1);
    recordFor(filter, AGENT.reporter, 20, 2);
    recordFor(filter, DP, 30, 3);
    const rowOf = (spiffeId: string, input: number, output: number) => ({
      spiffe_id: spiffeId, provider: "openai", model: "gpt-4o", requests: spiffeId === DP ? 2 : 1,
      input_tokens: input, cached_input_tokens: 0, cache_write_tokens: 0, output_tokens: output, cost_nanousd: input * 2500 + output * 10000,
    });
    const admin = getUsage(filter.vm, { spiffeId: ADMIN });
    expect(admin.response!.status).toBe(200);
    expect(admin.response!.headers.get("content-type")).toMatch(/^application\/json\b/);
    expect(admin.response!.headers.getAll("cache-control")).toEqual(["no-store"]);
    expect(admin.response!.json()).toEqual({ rows: [rowOf(DP, 40, 4), rowOf(AGENT.reporter, 20, 2)] });
    expect(getUsage(filter.vm, { spiffeId: AGENT.reporter }).response!.json()).toEqual({ rows: [rowOf(AGENT.reporter, 20, 2)] });
    expect(getUsage(filter.vm, { spiffeId: AGENT.otherTenant }).response!.json()).toEqual({ rows: [] });
    expect(getUsage(filter.vm, { properties: jwtMetadata({ sub: DP }) }).response!.json()).toEqual({ rows: [rowOf(DP, 40, 4)] });
    const post = getUsage(filter.vm, { method: "POST" });
    expectLlmError(post, 405, "BadRequest");
    expect(post.response!.headers.getAll("allow")).toEqual(["GET"]);
    expectLlmError(getUsage(filter.vm, { properties: {} }), 401, "AuthenticationError");
    expect(filter.host.httpCalls).toEqual([]);
  });

  it("the listener's static identity sees nothing (403)", () => {
    const filter = startLlmFilter({}, { identity_sources: ["mtls", "static"], static_spiffe_id: ADMIN });
    expectLlmError(getUsage(filter.vm, { properties: {} }), 403, "CredentialError");
  });
});

describe("rows", () => {
  const IDS = [DP, AGENT.reporter, AGENT.otherTenant];

  it("three identities interleaved record three separate rows", () => {
    const filter = startLlmFilter();
    for (const id of IDS) seedL1(filter.host, "anthropic", llmCredential("anthropic"), id);
    const body = { model: "claude-sonnet-4-5", max_tokens: 10, stream: true, messages: [] };
    const streams = IDS.map((mtls) => sendLlm(filter.vm, { provider: "anthropic", body, mtls }));
    const bodies = IDS.map((_, i) => sse([
      { event: "message_start", data: { type: "message_start", message: { usage: { input_tokens: 10 * (i + 1), output_tokens: 1 } } } },
      { event: "message_delta", data: { type: "message_delta", usage: { output_tokens: 100 * (i + 1) } } },
    ]));
    streams.forEach((stream) => stream.sendResponseHeaders({ ":status": "200", "content-type": "text/event-stream" }));
    const halves = bodies.map((text) => [text.slice(0, 60), text.slice(60, 150), text.slice(150)]);
    for (let part = 0; part < 3; part++) for (const i of [2, 0, 1]) streams[i].sendResponseBody(halves[i][part], { endOfStream: part === 2 });
    for (const [i, id] of IDS.entries()) {
      const input = 10 * (i + 1);
      const output = 100 * (i + 1);
      expect(usageRow(filter.host, id, "anthropic", "claude-sonnet-4-5"), id).toEqual(row(1, input, 0, 0, output, input * 3000 + output * 15000));
    }
    expect(rowNames(filter.host)).toEqual([2, 0, 1].map((i) => `${IDS[i]}|anthropic|claude-sonnet-4-5`));
  });

  it("max_usage_rows: a new row past the cap is logged only; existing rows keep counting", () => {
    const filter = startLlmFilter({ max_usage_rows: 2 });
    for (const id of IDS) seedL1(filter.host, "openai", llmCredential("openai"), id);
    const call = (mtls: string, model = "gpt-4o") => answer(sendLlm(filter.vm, { body: { model, messages: [] }, mtls }), { body: JSON.stringify({ usage: { prompt_tokens: 1, completion_tokens: 1 } }) });
    call(IDS[0]);
    call(IDS[1]);
    call(IDS[2]);
    call(IDS[0], "gpt-4o-mini");
    call(IDS[0]);
    expect(rowNames(filter.host)).toEqual([`${IDS[0]}|openai|gpt-4o`, `${IDS[1]}|openai|gpt-4o`]);
    expect(usageRow(filter.host, IDS[0], "openai", "gpt-4o")!.requests).toBe(2);
    expect(usageRow(filter.host, IDS[2], "openai", "gpt-4o")).toBeUndefined();
    expect(rowMetrics(filter.host, IDS[2], "openai", "gpt-4o").requests).toBe(0);
    expect(usageLogs(filter.host).map((log) => log.spiffe_id)).toEqual([IDS[0], IDS[1], IDS[2], IDS[0], IDS[0]]);
    expect(getUsage(filter.vm).response!.json()).toMatchObject({ rows: [{ spiffe_id: IDS[0], requests: 2 }, { spiffe_id: IDS[1], requests: 1 }] });
  });

  it("a call cut off by the client still records once what arrived", () => {
    const filter = startLlmFilter();
    seedL1(filter.host, "openai", llmCredential("openai"));
    const stream = sendLlm(filter.vm, { body: { ...CHAT, stream: true } });
    stream.sendResponseHeaders({ ":status": "200", "content-type": "text/event-stream" });
    stream.sendResponseBody(sse([{ choices: [], usage: { prompt_tokens: 5, completion_tokens: 6 } }]), { endOfStream: false });
    stream.resetByClient();
    expect(stream.state).toBe("reset");
    expect(usageRow(filter.host, DP, "openai", "gpt-4o")).toEqual(row(1, 5, 0, 0, 6, 5 * 2500 + 6 * 10000));
    expect(usageLogs(filter.host).length).toBe(1);
  });

  it("a client that goes away before the request went on records nothing", () => {
    const filter = startLlmFilter();
    const stream = sendLlm(filter.vm, { body: CHAT });
    stream.resetByClient();
    expect(usageLogs(filter.host)).toEqual([]);
    expect(rowNames(filter.host)).toEqual([]);
    expect(INJECTOR.cluster).toBe("hexr_injector");
    expectNothingUpstream(stream);
  });
});
