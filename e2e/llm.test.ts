// The LLM route through the real sidecar: agents call /v1/llm/{provider}/... with their SVID and no
// key; the LLM filter gets the provider's key the way it gets any credential (the injector reads it
// from the real vault in the caller's scope, OPA grants the models), sends the call on to the
// loopback provider emulator (support/llm-provider.ts: no real provider is reachable here), and
// reads the usage from the answer, streamed or not, for the identity that spent it.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileJwtSvidSource, HexrClient, anthropicClient, azureOpenaiClient } from "../sdk/typescript/src/index.ts";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { expectedUsage, startLlmProvider, type Fault, type LlmProvider, type RecordedCall } from "../support/llm-provider.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { LLM_ADMIN_ID, startStack, type Stack } from "../stack/index.ts";
import { SecretLedger, eventually, expectContractError, expectNoSecretsInLogs, request, summary, type HttpAnswer } from "./helpers.ts";

const CREW = "spiffe://hexr.local/agent/acme-corp/content-crew";
const RESEARCHER = `${CREW}/researcher`; // OPA: llm_openai:gpt-4o, llm_anthropic (policy/data.json)
const WRITER = `${CREW}/writer`; // llm_openai:gpt-4o
const EDITOR = `${CREW}/editor`; // llm_openai:gpt-4o-mini
const AZURE_CALLER = "spiffe://hexr.local/agent/acme-corp/research-analyst/main"; // azure_openai
const OTHER_AGENT = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main"; // no LLM grant
const SMART_AGENT = "spiffe://hexr.local/agent/acme-corp/smart-agent/main"; // llm_openai (the vault guide's sample)
const BUDGETED = "spiffe://hexr.local/agent/acme-corp/smart-agent/budgeted"; // llm_openai, with a budget below
/** What the vault guide's sample stores as its OpenAI key, as written. */
const GUIDE_KEY = "sk-proj-...";

const ledger = new SecretLedger();
const OPENAI_KEY = ledger.value(`sk-proj-${randomBytes(24).toString("base64url")}`);
const ANTHROPIC_KEY = ledger.value(`sk-ant-${randomBytes(24).toString("base64url")}`);
const BUDGET_TOKENS = 60;

let provider: LlmProvider;
let stack: Stack;
const tokens = new Map<string, string>();

beforeAll(async () => {
  provider = await startLlmProvider({
    keys: { openai: [OPENAI_KEY, GUIDE_KEY], anthropic: [ANTHROPIC_KEY] },
    // The Entra fake's tokens for Azure OpenAI: not the agent's own JWT-SVID, and for that resource.
    acceptsAzureToken: (token) => !tokens.has(token) && jwtClaims(token)?.aud === "https://cognitiveservices.azure.com",
  });
  const section = {
    providers: { openai: { models: ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"] }, anthropic: {}, azure_openai: {} },
    prices: {
      "gpt-4o": { input: 2.5, cached_input: 1.25, output: 10 },
      "gpt-4o-mini": { input: 0.15, cached_input: 0.075, output: 0.6 },
      "claude-sonnet-4-5": { input: 3, cached_input: 0.3, cache_write: 3.75, output: 15 },
    },
    budgets: [{ spiffe_ids: BUDGETED, window_seconds: 3600, max_tokens: BUDGET_TOKENS }],
  };
  const upstream = { openai: provider.url, anthropic: provider.url, azure_openai: provider.url };
  stack = await startStack({ llm: { providers: upstream, section: { ...section, admin_spiffe_ids: [LLM_ADMIN_ID] } } });
  for (const id of [RESEARCHER, WRITER, EDITOR, AZURE_CALLER, OTHER_AGENT, BUDGETED, LLM_ADMIN_ID]) tokens.set(id, ledger.token(await mintJwtSvid(id)));
  // The keys go into the vault as the agents would put them: agent-level, by one of their processes.
  for (const [id, name, value] of [[RESEARCHER, "OPENAI_API_KEY", OPENAI_KEY], [RESEARCHER, "ANTHROPIC_API_KEY", ANTHROPIC_KEY], [BUDGETED, "OPENAI_API_KEY", OPENAI_KEY]]) {
    const put = await request(`${stack.envoy.agentUrl}/v1/secrets/${name}`, {
      method: "PUT", headers: [["authorization", `Bearer ${tokens.get(id)}`], ["content-type", "application/json"]], body: JSON.stringify({ value }),
    });
    expect(put.status, summary(put)).toBe(201);
  }
});

afterAll(async () => {
  if (stack) await expectNoSecretsInLogs(stack, ledger);
  await stack?.stop();
  await provider?.stop();
});

function jwtClaims(token: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
}

/** A call to the sidecar's LLM route as `id`, with extra headers (an agent's own key, say). */
function llm(id: string | null, path: string, body: object | string, headers: [string, string][] = []): Promise<HttpAnswer> {
  const all: [string, string][] = [["content-type", "application/json"], ...headers];
  if (id) all.push(["authorization", `Bearer ${tokens.get(id)}`]);
  return request(`${stack.envoy.agentUrl}/v1/llm${path}`, { method: "POST", headers: all, body: typeof body === "string" ? body : JSON.stringify(body) });
}

const chat = (model: string, text: string, extra: object = {}) => ({ model, messages: [{ role: "user", content: text }], ...extra });

interface UsageRow { spiffe_id: string; provider: string; model: string; requests: number; input_tokens: number; cached_input_tokens: number; cache_write_tokens: number; output_tokens: number; cost_nanousd: number }

async function usageRows(as: string = LLM_ADMIN_ID): Promise<UsageRow[]> {
  const answer = await request(`${stack.envoy.agentUrl}/v1/llm/usage`, { headers: [["authorization", `Bearer ${tokens.get(as)}`]] });
  expect(answer.status, summary(answer)).toBe(200);
  return answer.json.rows;
}

async function rowOf(id: string, providerName: string, model: string): Promise<UsageRow | undefined> {
  return (await usageRows()).find((row) => row.spiffe_id === id && row.provider === providerName && row.model === model);
}

/** The difference in one identity's row across `call`: what the sidecar recorded for it. */
async function recorded(id: string, providerName: string, model: string, call: () => Promise<unknown>): Promise<Omit<UsageRow, "spiffe_id" | "provider" | "model">> {
  const zero = { requests: 0, input_tokens: 0, cached_input_tokens: 0, cache_write_tokens: 0, output_tokens: 0, cost_nanousd: 0 };
  const before = (await rowOf(id, providerName, model)) ?? { ...zero, spiffe_id: id, provider: providerName, model };
  await call();
  // The filter records when Envoy logs the stream, just after the agent has its answer.
  let after = before;
  await eventually("the call is recorded", async () => {
    after = (await rowOf(id, providerName, model)) ?? before;
    return after.requests > before.requests;
  });
  const delta = { ...zero };
  for (const field of Object.keys(zero) as (keyof typeof zero)[]) delta[field] = after[field] - before[field];
  return delta;
}

const lastCall = (): RecordedCall => provider.calls[provider.calls.length - 1];

/** Nano-USD for `usage` at `prices` (USD per million tokens): as the filter computes it. */
function cost(usage: NonNullable<RecordedCall["usage"]>, prices: { input: number; cached_input?: number; cache_write?: number; output: number }): number {
  const nanos = (usd: number | undefined) => Math.round((usd ?? prices.input) * 1000);
  const uncached = usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens;
  return uncached * nanos(prices.input) + usage.cached_tokens * nanos(prices.cached_input) + usage.cache_write_tokens * nanos(prices.cache_write) + usage.output_tokens * nanos(prices.output);
}

describe("the provider's key", () => {
  it("reaches the provider from the vault, never the agent; a key the agent sends is stripped", async () => {
    const answer = await llm(RESEARCHER, "/openai/v1/chat/completions", chat("gpt-4o", "hello"), [["x-api-key", "sk-agent-own-key-0000000000"], ["api-key", "sk-agent-own-key-1111111111"]]);
    expect(answer.status, summary(answer)).toBe(200);
    const call = lastCall();
    expect(call.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(call.headers["x-api-key"]).toBeUndefined();
    expect(call.headers["api-key"]).toBeUndefined();
    expect(Object.keys(call.headers).filter((name) => name.startsWith("x-hexr-"))).toEqual([]);
    expect(answer.text).not.toContain(OPENAI_KEY);
    expect(JSON.stringify(answer.headers)).not.toContain(OPENAI_KEY);
    expect(answer.headers["x-hexr-spiffe-id"]).toBe(RESEARCHER);
  });

  it("goes to Anthropic in x-api-key, and Azure OpenAI gets an Entra token from the credential path", async () => {
    const anthropic = await llm(RESEARCHER, "/anthropic/v1/messages", { ...chat("claude-sonnet-4-5", "hi"), max_tokens: 64 }, [["anthropic-version", "2023-06-01"]]);
    expect(anthropic.status, summary(anthropic)).toBe(200);
    expect(lastCall().headers["x-api-key"]).toBe(ANTHROPIC_KEY);
    expect(lastCall().headers.authorization).toBeUndefined();
    const azure = await llm(AZURE_CALLER, "/azure_openai/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", chat("ignored", "hi"));
    expect(azure.status, summary(azure)).toBe(200);
    const token = String(lastCall().headers.authorization).replace(/^Bearer /, "");
    expect(jwtClaims(token)?.aud).toBe("https://cognitiveservices.azure.com");
    expect(token).not.toBe(tokens.get(AZURE_CALLER));
  });

  it("refuses the key to /exchange: no door hands it to an agent", async () => {
    const answer = await request(`${stack.envoy.agentUrl}/exchange`, {
      method: "POST", headers: [["authorization", `Bearer ${tokens.get(RESEARCHER)}`], ["content-type", "application/json"]], body: JSON.stringify({ service: "llm_openai" }),
    });
    expectContractError(answer, 403, "CredentialError");
    expect(answer.text).not.toContain(OPENAI_KEY);
  });

  it("is 403 for an agent whose scope in the vault holds no key, and for one OPA grants no LLM", async () => {
    expectContractError(await llm(AZURE_CALLER, "/openai/v1/chat/completions", chat("gpt-4o", "hi")), 403, "CredentialError");
    expectContractError(await llm(OTHER_AGENT, "/openai/v1/chat/completions", chat("gpt-4o", "hi")), 403, "CredentialError");
  });
});

describe("what may be called", () => {
  it("refuses a model OPA did not grant, or the sidecar does not serve, before the call leaves", async () => {
    const calls = provider.calls.length;
    const notGranted = await llm(WRITER, "/openai/v1/chat/completions", chat("gpt-4o-mini", "hi"));
    expectContractError(notGranted, 403, "CredentialError");
    expect(notGranted.json.error.message).toMatch(/not granted/);
    const notServed = await llm(RESEARCHER, "/openai/v1/chat/completions", chat("o4-mini", "hi"));
    expectContractError(notServed, 403, "CredentialError");
    expect(provider.calls.length).toBe(calls);
  });

  it("answers bad input with the contract's error and sends nothing on", async () => {
    const calls = provider.calls.length;
    expectContractError(await llm(null, "/openai/v1/chat/completions", chat("gpt-4o", "hi")), 401, "AuthenticationError");
    expectContractError(await llm(RESEARCHER, "/openai/v1/files", chat("gpt-4o", "hi")), 404, "BadRequest");
    expectContractError(await llm(RESEARCHER, "/openai/v1/chat/completions", "{not json"), 400, "BadRequest");
    expectContractError(await llm(RESEARCHER, "/openai/v1/chat/completions", { messages: [] }), 400, "BadRequest");
    expectContractError(await llm(RESEARCHER, "/openai/v1/chat/completions", chat("gpt-4o\"}", "hi")), 400, "BadRequest");
    expectContractError(await llm(RESEARCHER, "/openai/v1/chat/completions", chat("gpt-4o", "hi", { stream: true, stream_options: { include_usage: false } })), 400, "BadRequest");
    expectContractError(await llm(RESEARCHER, "/openai/v1/chat/completions", chat("gpt-4o", "x".repeat(1_100_000))), 413, "BadRequest");
    const get = await request(`${stack.envoy.agentUrl}/v1/llm/openai/v1/chat/completions`, { headers: [["authorization", `Bearer ${tokens.get(RESEARCHER)}`]] });
    expectContractError(get, 405, "BadRequest");
    expect(provider.calls.length).toBe(calls);
  });

  it("holds an identity to its budget: 429 with retry-after once the window's tokens are spent", async () => {
    let answer: HttpAnswer;
    let spent = 0;
    do {
      answer = await llm(BUDGETED, "/openai/v1/chat/completions", chat("gpt-4o", "a prompt of some length to spend tokens"));
      if (answer.status === 200) spent += answer.json.usage.total_tokens;
    } while (answer.status === 200 && spent < BUDGET_TOKENS * 4);
    expect(spent).toBeGreaterThanOrEqual(BUDGET_TOKENS);
    expectContractError(answer, 429, "CredentialError");
    expect(Number(answer.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(answer.headers["retry-after"])).toBeLessThanOrEqual(3600);
  });
});

describe("usage, attributed to the identity that spent it", () => {
  it("records streamed and non-streamed calls of three roles at once, each under its own SPIFFE ID", async () => {
    const calls: [string, string, object][] = [
      [RESEARCHER, "gpt-4o", chat("gpt-4o", "research the market for tea", { stream: true })],
      [WRITER, "gpt-4o", chat("gpt-4o", "write a long article about tea and its history", { max_tokens: 40 })],
      [EDITOR, "gpt-4o-mini", chat("gpt-4o-mini", "edit", { stream: true, stream_options: { include_usage: true } })],
    ];
    const before = await usageRows();
    const answers = await Promise.all(calls.map(([id, , body]) => llm(id, "/openai/v1/chat/completions", body)));
    for (const answer of answers) expect(answer.status, summary(answer)).toBe(200);
    const prices = { "gpt-4o": { input: 2.5, cached_input: 1.25, output: 10 }, "gpt-4o-mini": { input: 0.15, cached_input: 0.075, output: 0.6 } } as const;
    await eventually("all three recorded", async () => {
      const rows = await usageRows();
      return calls.every(([id, model]) => (rows.find((r) => r.spiffe_id === id && r.model === model)?.requests ?? 0) > (before.find((r) => r.spiffe_id === id && r.model === model)?.requests ?? 0));
    });
    const after = await usageRows();
    for (const [id, model, body] of calls) {
      const expected = expectedUsage("openai", "/v1/chat/completions", { ...body, stream_options: { include_usage: true } })!;
      const was = before.find((r) => r.spiffe_id === id && r.model === model);
      const now = after.find((r) => r.spiffe_id === id && r.model === model)!;
      expect({ input: now.input_tokens - (was?.input_tokens ?? 0), output: now.output_tokens - (was?.output_tokens ?? 0), cost: now.cost_nanousd - (was?.cost_nanousd ?? 0) }, id)
        .toEqual({ input: expected.input_tokens, output: expected.output_tokens, cost: cost(expected, prices[model as keyof typeof prices]) });
    }
    // A role sees its own rows only; the admin sees everyone's.
    expect(new Set((await usageRows(WRITER)).map((row) => row.spiffe_id))).toEqual(new Set([WRITER]));
  });

  it("turns on a stream's usage when the agent did not ask, and reads Anthropic's split usage with its cache", async () => {
    const streamed = await recorded(RESEARCHER, "openai", "gpt-4o", () => llm(RESEARCHER, "/openai/v1/chat/completions", chat("gpt-4o", "stream please", { stream: true })));
    expect(lastCall().body).toMatchObject({ stream_options: { include_usage: true } });
    expect(streamed.input_tokens).toBe(lastCall().usage!.input_tokens);
    const body = { model: "claude-sonnet-4-5", max_tokens: 100, stream: true, messages: [{ role: "user", content: [{ type: "text", text: "a long cached context ".repeat(20), cache_control: { type: "ephemeral" } }] }] };
    const anthropic = await recorded(RESEARCHER, "anthropic", "claude-sonnet-4-5", () => llm(RESEARCHER, "/anthropic/v1/messages", body, [["anthropic-version", "2023-06-01"]]));
    const reported = lastCall().usage!;
    expect(reported.cached_tokens + reported.cache_write_tokens).toBeGreaterThan(0);
    expect(anthropic).toMatchObject({ requests: 1, input_tokens: reported.input_tokens, cached_input_tokens: reported.cached_tokens, cache_write_tokens: reported.cache_write_tokens, output_tokens: reported.output_tokens });
    expect(anthropic.cost_nanousd).toBe(cost(reported, { input: 3, cached_input: 0.3, cache_write: 3.75, output: 15 }));
  });

  it("exports the usage as labelled Prometheus metrics", async () => {
    const stats = await request(stack.envoy.statsUrl);
    const line = stats.text.split("\n").find((l) => l.startsWith("hexr_llm_output_tokens{") && l.includes(`spiffe_id="${WRITER}"`) && l.includes('model="gpt-4o"'));
    expect(line, "hexr_llm_output_tokens for the writer").toBeDefined();
    expect(Number(line!.split(" ").pop())).toBeGreaterThan(0);
    expect(stats.text).not.toContain(OPENAI_KEY);
  });
});

describe("broken answers", () => {
  async function withFault(fault: Fault, stream: boolean): Promise<{ answer: HttpAnswer | Error; delta: Awaited<ReturnType<typeof recorded>>; call: RecordedCall }> {
    provider.injectFault(fault);
    let answer: HttpAnswer | Error = new Error("not sent");
    const delta = await recorded(EDITOR, "openai", "gpt-4o-mini", async () => {
      answer = await llm(EDITOR, "/openai/v1/chat/completions", chat("gpt-4o-mini", `fault ${fault}`, { stream })).catch((error: Error) => error);
    });
    return { answer, delta, call: lastCall() };
  }

  // malformed-json: the body breaks after a complete usage object, which counts (what was seen is kept).
  it.each([["split-bytes", true], ["garbage-sse", true], ["truncate-after-usage", true], ["truncate-after-usage", false], ["malformed-json", false]] as const)(
    "keeps the usage seen before %s (stream %s), and the VM never traps",
    async (fault, stream) => {
      const { delta, call } = await withFault(fault, stream);
      expect(call.fault).toBe(fault);
      const seen = call.usage ?? expectedUsage("openai", call.path, call.body)!;
      expect({ input: delta.input_tokens, output: delta.output_tokens }).toEqual({ input: seen.input_tokens, output: seen.output_tokens });
      expect(delta.input_tokens).toBeGreaterThan(0);
    },
  );

  it.each([["truncate-before-usage", true], ["huge-usage", true], ["huge-usage", false], ["error-500", false]] as const)(
    "counts the call but no tokens it cannot read after %s (stream %s), and the VM never traps",
    async (fault, stream) => {
      const { delta } = await withFault(fault, stream);
      expect(delta).toMatchObject({ requests: 1, input_tokens: 0, output_tokens: 0, cost_nanousd: 0 });
    },
  );

  it("served every fault without a VM reload: the filter never trapped", async () => {
    const stats = await request(stack.envoy.statsUrl);
    const reloads = stats.text.split("\n").filter((l) => /^envoy_wasm_hexr_(llm|exchange)_vm_reload(_failure)?\{/.test(l));
    expect(reloads.length).toBeGreaterThan(0);
    for (const line of reloads) expect(line, line).toMatch(/ 0$/);
    const answer = await llm(EDITOR, "/openai/v1/chat/completions", chat("gpt-4o-mini", "still here"));
    expect(answer.status, summary(answer)).toBe(200);
  });
});

describe("the providers' own clients, unchanged, pointed at the sidecar", () => {
  it("openai (npm): chat, a stream that did not ask for usage, and embeddings", async () => {
    const client = new OpenAI({ baseURL: `${stack.envoy.agentUrl}/v1/llm/openai/v1`, apiKey: tokens.get(RESEARCHER)!, maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "npm" }] });
    expect(answer.usage?.prompt_tokens).toBeGreaterThan(0);
    let text = "";
    for await (const chunk of await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "npm stream" }], stream: true })) {
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    expect(text.length).toBeGreaterThan(0);
    expect(lastCall().headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    const embedded = await recorded(RESEARCHER, "openai", "text-embedding-3-small", () => client.embeddings.create({ model: "text-embedding-3-small", input: "tea" }));
    expect(embedded.input_tokens).toBe(lastCall().usage!.input_tokens);
  });

  it("openai and anthropic (Python): chat, streams, the Responses API and messages", async () => {
    const { stdout } = await promisify(execFile)(tools.python(), [`${projectRoot}/e2e/agent/llm_clients.py`], {
      env: { ...process.env, HEXR_SIDECAR_URL: stack.envoy.agentUrl, AGENT_JWT_SVID: tokens.get(RESEARCHER)! },
      timeout: 60_000,
    });
    const results = JSON.parse(stdout);
    expect(results.openai_chat.usage.prompt_tokens).toBeGreaterThan(0);
    expect(results.openai_stream.text.length).toBeGreaterThan(0);
    expect(results.openai_responses_stream.usage.input_tokens).toBeGreaterThan(0);
    expect(results.anthropic_message.usage.input_tokens).toBeGreaterThan(0);
    expect(results.anthropic_stream.usage.output_tokens).toBeGreaterThan(0);
    expect(stdout).not.toContain(OPENAI_KEY);
    expect(stdout).not.toContain(ANTHROPIC_KEY);
  });
});

describe("the Hexr SDK's provider clients (TypeScript), against the stack", () => {
  it("anthropicClient streams a message and azureOpenaiClient chats: the real key or Entra token upstream, every call metered", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hexr-llm-clients-"));
    const clientOf = (id: string) => {
      const file = path.join(dir, `${id.split("/").slice(-2).join("-")}.jwt`);
      writeFileSync(file, tokens.get(id)!, { mode: 0o600 });
      return new HexrClient({ sidecarUrl: stack.envoy.agentUrl, identity: new FileJwtSvidSource(file) });
    };
    const researcher = clientOf(RESEARCHER);
    const azureCaller = clientOf(AZURE_CALLER);
    try {
      const anthropic = await anthropicClient({ client: researcher, maxRetries: 0 });
      let message: Anthropic.Message | undefined;
      const streamed = await recorded(RESEARCHER, "anthropic", "claude-sonnet-4-5", async () => {
        message = await anthropic.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "ts sdk stream" }] }).finalMessage();
      });
      expect(message!.usage.output_tokens).toBeGreaterThan(0);
      expect(streamed.output_tokens).toBe(message!.usage.output_tokens);
      expect(lastCall().headers["x-api-key"]).toBe(ANTHROPIC_KEY);

      const azure = await azureOpenaiClient({ client: azureCaller, maxRetries: 0 });
      const answer = await azure.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "ts sdk azure" }] });
      expect(answer.usage?.prompt_tokens).toBeGreaterThan(0);
      const upstream = lastCall().headers;
      expect(upstream["api-key"], "the placeholder never reaches Azure").toBeUndefined();
      expect(jwtClaims(String(upstream.authorization).replace(/^Bearer /, ""))?.aud).toBe("https://cognitiveservices.azure.com");
    } finally {
      researcher.close();
      azureCaller.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the samples, as written, against the stack", () => {
  const run = promisify(execFile);

  async function sample(file: string, spiffeId: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
    const dir = mkdtempSync(path.join(tmpdir(), "hexr-llm-sample-"));
    try {
      const tokenFile = path.join(dir, "svid.jwt");
      writeFileSync(tokenFile, ledger.token(await mintJwtSvid(spiffeId)), { mode: 0o600 });
      const { stdout } = await run(tools.python(), [path.join(projectRoot, "examples", "python", file)], {
        env: { PATH: process.env.PATH, HOME: dir, HEXR_SIDECAR_URL: stack.envoy.agentUrl, HEXR_JWT_SVID_FILE: tokenFile, HEXR_CONTEXT_DIR: dir, ...env },
        timeout: 30_000,
      });
      return stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("the vault guide's smart_agent.py: stores its key, calls hexr_llm, which the sidecar keys from the vault", async () => {
    const calls = provider.calls.length;
    expect(await sample("vault/smart_agent.py", SMART_AGENT)).toMatch(/Stored secrets: \['OPENAI_API_KEY', 'SLACK_WEBHOOK'\]/);
    const call = provider.calls.slice(calls).find((c) => c.family === "openai");
    expect(call?.headers.authorization).toBe(`Bearer ${GUIDE_KEY}`);
    expect(call?.body).toMatchObject({ model: "gpt-4o", messages: [{ role: "user", content: "Generate a status report" }] });
  });

  it("three crew roles call their models at once, and the cost report prints the per-role tree", async () => {
    const roles = ["researcher", "writer", "editor"] as const;
    const outputs = await Promise.all(roles.map((role) => sample("llm/crew_llm.py", `${CREW}/${role}`, { HEXR_PROCESS_ROLE: role })));
    for (const [i, role] of roles.entries()) expect(JSON.parse(outputs[i])).toMatchObject({ role });
    await eventually("the crew's calls are recorded", async () => (await usageRows()).filter((row) => row.spiffe_id.startsWith(CREW)).length >= 3);
    const report = await sample("llm/cost_report.py", LLM_ADMIN_ID);
    expect(report).toMatch(/content-crew/);
    for (const role of roles) expect(report).toContain(`content-crew/${role}`);
    expect(report).toMatch(/gpt-4o: [\d,]+ input \+ [\d,]+ output tokens \(\$\d+\.\d{3}\)/);
    expect(report).toMatch(/Total: \$\d+\.\d{3}/);
  });
});
