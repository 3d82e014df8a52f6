// hexrLlm, openaiClient, llmUsage and costTree against a loopback stand-in for the sidecar's LLM
// route and the providers behind it (below; the Python SDK's tests/fake_llm_sidecar.py plays the
// same part): exactly what each sends, no key from the agent, a fresh JWT-SVID on every request,
// the `openai` package's client streamed and not, error mapping, spans without content, the
// seeds' cost tree.
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import {
  AccessDeniedError, AuthenticationError, BudgetExceededError, CredentialError, HexrClient, HexrError, LLM_PROVIDERS, NoJwtSvidSource,
  DEFAULT_AZURE_API_VERSION, PLACEHOLDER_KEY, ProviderError, anthropicClient, azureOpenaiClient, costTree, hexrAgent,
  hexrLlm, llmUsage, openaiClient, type UsageRow,
} from "../src/index.ts";
import { fixedIdentity, unsignedJwt } from "./helpers.ts";

const WRITER = "spiffe://hexr.local/agent/acme-corp/content-crew/writer";
const RESEARCHER = "spiffe://hexr.local/agent/acme-corp/content-crew/researcher";
const EDITOR = "spiffe://hexr.local/agent/acme-corp/content-crew/editor";
const ADMIN = "spiffe://hexr.local/agent/hexr-system/admin/main";
const PROMPT = "Generate a status report on project NIGHTJAR";
const REPLY = "All systems nominal.";
const CONTRACT = JSON.parse(readFileSync(path.join(import.meta.dirname, "../../../contract/contract.json"), "utf8"));

// ---- the stand-in ---------------------------------------------------------------------------------

interface Recorded {
  method: string;
  path: string;
  sub?: string;
  n?: number;
  /** authorization / x-api-key / api-key values other than the bearer JWT-SVID */
  keyHeaders: Record<string, string>;
  anthropicVersion?: string;
  body: any;
}

interface FakeLlm {
  url: string;
  requests: Recorded[];
  deniedModels: Set<string>;
  revoked: Set<string>;
  admins: Set<string>;
  budgetExhausted: boolean;
  providerError?: { status: number; body: unknown };
  usageRows: UsageRow[];
  reset(): void;
  close(): Promise<void>;
}

function claimsOf(authorization: string): { sub?: string; exp?: number; n?: number } | undefined {
  if (!authorization.startsWith("Bearer ")) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(authorization.slice(7).split(".")[1] ?? "", "base64url").toString());
    return typeof claims?.sub === "string" ? claims : undefined;
  } catch {
    return undefined;
  }
}

function openaiAnswer(body: any, model: string): { type: string; data: string } {
  const base = { id: "chatcmpl-fake1", created: 1_700_000_000, model: `${model}-2024-08-06` };
  const usage = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 0 } };
  if (!body.stream) {
    const answer = { ...base, object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: REPLY, refusal: null }, logprobs: null, finish_reason: "stop" }], usage };
    return { type: "application/json", data: JSON.stringify(answer) };
  }
  const chunk = (choices: unknown[], extra = {}) => ({ ...base, object: "chat.completion.chunk", choices, ...extra });
  const chunks = [
    chunk([{ index: 0, delta: { role: "assistant", content: "All systems" }, finish_reason: null }]),
    chunk([{ index: 0, delta: { content: " nominal." }, finish_reason: null }]),
    chunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
    ...(body.stream_options?.include_usage ? [chunk([], { usage })] : []),
  ];
  return { type: "text/event-stream", data: chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join("") + "data: [DONE]\n\n" };
}

async function startFakeLlm(): Promise<FakeLlm> {
  const state: FakeLlm = {
    url: "", requests: [], deniedModels: new Set(), revoked: new Set(), admins: new Set(), budgetExhausted: false, usageRows: [],
    reset() {
      Object.assign(state, { requests: [], deniedModels: new Set(), revoked: new Set(), admins: new Set(), budgetExhausted: false, providerError: undefined, usageRows: [] });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const claims = claimsOf(String(req.headers.authorization ?? ""));
      const keyHeaders: Record<string, string> = {};
      for (const name of ["authorization", "x-api-key", "api-key"]) {
        const value = req.headers[name];
        if (typeof value === "string" && !(name === "authorization" && claims)) keyHeaders[name] = value;
      }
      let body: any;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = raw;
      }
      const record: Recorded = { method: req.method ?? "", path: req.url ?? "", sub: claims?.sub, n: claims?.n, keyHeaders, anthropicVersion: req.headers["anthropic-version"] as string | undefined, body };
      state.requests.push(record);
      const reply = (status: number, type: string, data: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": type, ...headers });
        res.end(data);
      };
      const refuse = (status: number, type: string, message: string, headers: Record<string, string> = {}) =>
        reply(status, "application/json", JSON.stringify({ error: { type, message } }), headers);
      const url = new URL(record.path, "http://fake");
      if (!claims) return refuse(401, "AuthenticationError", "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)");
      if ((claims.exp ?? 0) * 1000 <= Date.now()) return refuse(401, "AuthenticationError", "the JWT-SVID has expired");
      if (state.revoked.has(claims.sub!)) return refuse(403, "CredentialError", "the identity is revoked");
      if (url.pathname === "/v1/llm/usage") {
        const rows = state.admins.has(claims.sub!) ? state.usageRows : state.usageRows.filter((r) => r.spiffe_id === claims.sub);
        return reply(200, "application/json", JSON.stringify({ rows }));
      }
      const match = /^\/v1\/llm\/(openai|anthropic|azure_openai)(\/.*)$/.exec(url.pathname);
      if (!match) return refuse(404, "BadRequest", "unknown LLM route");
      const [, provider, endpoint] = match;
      const deployment = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(endpoint)?.[1];
      const known = provider === "openai" ? endpoint === "/v1/chat/completions" : provider === "anthropic" ? endpoint === "/v1/messages" : deployment !== undefined;
      if (!known) return refuse(404, "BadRequest", "unknown LLM endpoint");
      if (req.method !== "POST") return refuse(405, "BadRequest", "method not allowed");
      const model = deployment ?? body?.model;
      if (state.deniedModels.has(model)) return refuse(403, "CredentialError", "the model is not granted to this identity");
      if (state.budgetExhausted) return refuse(429, "CredentialError", "the LLM budget of this identity is exhausted", { "retry-after": "30" });
      if (state.providerError) {
        const { status, body: error } = state.providerError;
        state.providerError = undefined;
        return reply(status, "application/json", JSON.stringify(error), { "retry-after": "7" });
      }
      if (provider === "anthropic") {
        if (!record.anthropicVersion) return reply(400, "application/json", JSON.stringify({ type: "error", error: { type: "invalid_request_error", message: "anthropic-version: header is required" } }));
        const usage = { input_tokens: 10, output_tokens: 6, cache_read_input_tokens: 4, cache_creation_input_tokens: 2 };
        return reply(200, "application/json", JSON.stringify({ id: "msg_fake1", type: "message", role: "assistant", model, content: [{ type: "text", text: REPLY }], stop_reason: "end_turn", stop_sequence: null, usage }));
      }
      if (provider === "azure_openai" && !url.searchParams.get("api-version")) return reply(404, "application/json", JSON.stringify({ error: { code: "404", message: "Resource not found" } }));
      if (body?.stream) body.stream_options = { include_usage: true, ...body.stream_options }; // the sidecar meters streams
      const { type, data } = openaiAnswer(body, model);
      return reply(200, type, data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

// ---- setup ----------------------------------------------------------------------------------------

const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
let fake: FakeLlm;
let token = unsignedJwt(WRITER);
let client: HexrClient;
let serial = 0;
/** The identity now: a token with a fresh `n` claim, so that each request shows which one it carried. */
const as = (spiffeId: string) => {
  serial++;
  const part = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  token = `${part({ alg: "ES256", typ: "JWT" })}.${part({ sub: spiffeId, iat: now, exp: now + 3600, n: serial })}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk`;
  return serial;
};

beforeAll(async () => {
  fake = await startFakeLlm();
  trace.setGlobalTracerProvider(tracerProvider);
});
afterAll(async () => {
  trace.disable();
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  as(WRITER);
  client = new HexrClient({ sidecarUrl: fake.url, identity: fixedIdentity(() => token) });
  spans.reset();
});
afterEach(() => {
  client.close();
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

async function rejection(promise: Promise<unknown>): Promise<HexrError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HexrError);
    return error as HexrError;
  }
  throw new Error("it did not reject");
}

const llmRequests = () => fake.requests.filter((r) => r.path !== "/v1/llm/usage");

// ---- the contract ---------------------------------------------------------------------------------

it("speaks the contract's route", () => {
  expect([...LLM_PROVIDERS].sort()).toEqual(Object.keys(CONTRACT.llm.providers).sort());
  expect(CONTRACT.llm.path).toBe("/v1/llm");
  expect(CONTRACT.llm.providers.openai.endpoints).toContain("/v1/chat/completions");
  expect(CONTRACT.llm.providers.anthropic.endpoints).toContain("/v1/messages");
  expect(CONTRACT.llm.providers.azure_openai.endpoints).toContain("/openai/deployments/{deployment}/chat/completions");
  expect(new Set(CONTRACT.llm.agent_key_headers)).toEqual(new Set(["authorization", "x-api-key", "api-key"]));
});

// ---- hexrLlm --------------------------------------------------------------------------------------

describe("hexrLlm", () => {
  it("sends the provider's native request with the JWT-SVID and no key, and returns the answer unchanged", async () => {
    const main = hexrAgent({ name: "smart-agent", tenant: "acme-corp" }, () =>
      hexrLlm({ provider: "openai", model: "gpt-4o", prompt: "Generate a status report", client }),
    );
    const response = await main();
    expect(response).toEqual({
      id: "chatcmpl-fake1", object: "chat.completion", created: 1_700_000_000, model: "gpt-4o-2024-08-06",
      choices: [{ index: 0, message: { role: "assistant", content: REPLY, refusal: null }, logprobs: null, finish_reason: "stop" }],
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 0 } },
    });
    const [request] = llmRequests();
    expect(request).toMatchObject({ method: "POST", path: "/v1/llm/openai/v1/chat/completions", sub: WRITER, keyHeaders: {} });
    expect(request.body).toEqual({ model: "gpt-4o", messages: [{ role: "user", content: "Generate a status report" }] });
  });

  it("uses the process's client by default", async () => {
    vi.stubEnv("HEXR_SIDECAR_URL", fake.url);
    const { configure } = await import("../src/index.ts");
    configure({ sidecarUrl: fake.url, identity: fixedIdentity(() => token) });
    await hexrLlm({ provider: "openai", model: "gpt-4o", messages: [{ role: "user", content: PROMPT }], temperature: 0.2 });
    expect(llmRequests()[0].body).toEqual({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }], temperature: 0.2 });
  });

  it("anthropic: messages with max_tokens 1024 unless given, and anthropic-version", async () => {
    const answer = await hexrLlm({ provider: "anthropic", model: "claude-test-model", prompt: PROMPT, system: "You are terse.", client });
    expect((answer.content as { text: string }[])[0].text).toBe(REPLY);
    await hexrLlm({ provider: "anthropic", model: "claude-test-model", prompt: PROMPT, max_tokens: 64, client });
    const [first, second] = llmRequests();
    expect(first).toMatchObject({ path: "/v1/llm/anthropic/v1/messages", anthropicVersion: "2023-06-01", keyHeaders: {} });
    expect(first.body).toEqual({ model: "claude-test-model", messages: [{ role: "user", content: PROMPT }], system: "You are terse.", max_tokens: 1024 });
    expect(second.body.max_tokens).toBe(64);
  });

  it("azure_openai: the deployment is the model, api-version defaults to a GA one", async () => {
    await hexrLlm({ provider: "azure_openai", model: "gpt4o-prod", prompt: PROMPT, client });
    await hexrLlm({ provider: "azure_openai", model: "gpt4o-prod", prompt: PROMPT, apiVersion: "2025-01-01-preview", temperature: 0, client });
    const [first, second] = llmRequests();
    expect(first.path).toBe("/v1/llm/azure_openai/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21");
    expect(first.body).toEqual({ messages: [{ role: "user", content: PROMPT }] });
    expect(second.path).toMatch(/\?api-version=2025-01-01-preview$/);
    expect(second.body).toEqual({ messages: [{ role: "user", content: PROMPT }], temperature: 0 });
  });

  it.each([
    [{ provider: "openai", model: "gpt-4o" }, "exactly one of prompt and messages"],
    [{ provider: "openai", model: "gpt-4o", prompt: "a", messages: [] }, "exactly one of prompt and messages"],
    [{ provider: "openai", model: "gpt-4o", messages: "hello" }, "messages must be an array"],
    [{ provider: "openai", model: "gpt-4o", prompt: PROMPT, stream: true }, "does not stream"],
    [{ provider: "mistral", model: "large", prompt: PROMPT }, "provider must be one of openai, anthropic, azure_openai"],
    [{ provider: "openai", model: "", prompt: PROMPT }, "model must be"],
    [{ provider: "azure_openai", model: "../admin", prompt: PROMPT }, "deployment"],
    [{ provider: "openai", model: "gpt-4o", prompt: PROMPT, bad: 1n }, "not JSON-serialisable"],
  ])("refuses %o before any request", async (options, fragment) => {
    const error = await rejection(hexrLlm({ ...(options as any), client }));
    expect(error.type).toBe("BadRequest");
    expect(error.message).toContain(fragment);
    expect(error.message).not.toContain(PROMPT);
    expect(fake.requests).toEqual([]);
  });

  it("no identity: AuthenticationError before any request", async () => {
    const nobody = new HexrClient({ sidecarUrl: fake.url, identity: new NoJwtSvidSource() });
    await expect(hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, client: nobody })).rejects.toBeInstanceOf(AuthenticationError);
    await expect(openaiClient({ client: nobody })).rejects.toBeInstanceOf(AuthenticationError);
    expect(fake.requests).toEqual([]);
  });
});

// ---- the openai client ----------------------------------------------------------------------------

describe("openaiClient", () => {
  it("chat completions, plain and streamed, through the sidecar with the placeholder replaced", async () => {
    const openai = await openaiClient({ client, maxRetries: 0 });
    const completion = await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }] });
    expect(completion.choices[0].message.content).toBe(REPLY);
    const chunks = [];
    for await (const chunk of await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }], stream: true })) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(REPLY);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage?.completion_tokens).toBe(5); // usage turned on by the sidecar
    const [plain, streamed] = llmRequests();
    expect(plain).toMatchObject({ path: "/v1/llm/openai/v1/chat/completions", sub: WRITER, keyHeaders: {} });
    expect(streamed.body.stream).toBe(true);
  });

  it("presents the current JWT-SVID on every request", async () => {
    const first = as(WRITER);
    const openai = await openaiClient({ client, maxRetries: 0 });
    await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }] });
    await hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, client });
    const second = as(WRITER); // rotated
    await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }] });
    await hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, client });
    expect(llmRequests().map((r) => r.n)).toEqual([first, first, second, second]);
  });

  it("refuses a key or another endpoint", async () => {
    await expect(openaiClient({ client, apiKey: "sk-real" } as never)).rejects.toThrow(/sidecar/);
    await expect(openaiClient({ client, baseURL: "https://api.openai.com/v1" } as never)).rejects.toThrow(/sidecar/);
  });

  it("maps the sidecar's 403 to openai's PermissionDeniedError", async () => {
    fake.deniedModels.add("gpt-4o");
    const openai = await openaiClient({ client, maxRetries: 0 });
    const { PermissionDeniedError } = await import("openai");
    await expect(openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }] })).rejects.toBeInstanceOf(PermissionDeniedError);
  });
});

describe("azureOpenaiClient", () => {
  it("chat completions to a deployment, plain and streamed, with the GA api-version and only the placeholder key", async () => {
    const first = as(WRITER);
    const azure = await azureOpenaiClient({ client, maxRetries: 0 });
    const completion = await azure.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }] });
    expect(completion.choices[0].message.content).toBe(REPLY);
    const second = as(WRITER); // rotated
    const chunks = [];
    for await (const chunk of await azure.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }], stream: true })) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(REPLY);
    const [plain, streamed] = llmRequests();
    expect(plain).toMatchObject({ path: `/v1/llm/azure_openai/openai/deployments/gpt-4o/chat/completions?api-version=${DEFAULT_AZURE_API_VERSION}`, sub: WRITER, n: first });
    expect(plain.keyHeaders).toEqual({ "api-key": PLACEHOLDER_KEY });
    expect(streamed).toMatchObject({ n: second });
  });

  it("takes another apiVersion and a fixed deployment; refuses a key, an endpoint or a token provider", async () => {
    const azure = await azureOpenaiClient({ client, maxRetries: 0, apiVersion: "2025-01-01-preview", deployment: "reports" });
    await azure.chat.completions.create({ model: "ignored-for-the-deployment", messages: [{ role: "user", content: PROMPT }] });
    expect(llmRequests()[0].path).toBe("/v1/llm/azure_openai/openai/deployments/reports/chat/completions?api-version=2025-01-01-preview");
    for (const refused of [{ apiKey: "k" }, { endpoint: "https://x.openai.azure.com" }, { baseURL: "https://x" }, { azureADTokenProvider: async () => "t" }]) {
      await expect(azureOpenaiClient({ client, ...refused } as never)).rejects.toThrow(/sidecar/);
    }
  });
});

describe("anthropicClient", () => {
  it("messages through the sidecar with the current JWT-SVID and only the placeholder key", async () => {
    const first = as(EDITOR);
    const anthropic = await anthropicClient({ client, maxRetries: 0 });
    const message = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: PROMPT }] });
    expect(message.content[0]).toMatchObject({ type: "text", text: REPLY });
    expect(message.usage.input_tokens).toBe(10);
    const second = as(EDITOR);
    await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: PROMPT }] });
    const [one, two] = llmRequests();
    // The package sends its own anthropic-version (newer than hexrLlm's ANTHROPIC_VERSION).
    expect(one).toMatchObject({ path: "/v1/llm/anthropic/v1/messages", sub: EDITOR, n: first, anthropicVersion: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    // The placeholder (as x-api-key or authorization, by the package's release), never a real key.
    for (const value of Object.values(one.keyHeaders)) expect(value).toBe(PLACEHOLDER_KEY);
    expect(two.n).toBe(second);
  });

  it("refuses a key, a token, another endpoint or credentials; maps the sidecar's 429 to the package's RateLimitError", async () => {
    for (const refused of [{ apiKey: "sk-ant" }, { authToken: "t" }, { baseURL: "https://api.anthropic.com" }, { credentials: {} }, { profile: "p" }]) {
      await expect(anthropicClient({ client, ...refused } as never)).rejects.toThrow(/sidecar/);
    }
    fake.budgetExhausted = true;
    const anthropic = await anthropicClient({ client, maxRetries: 0 });
    const { RateLimitError } = await import("@anthropic-ai/sdk");
    await expect(anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: PROMPT }] })).rejects.toBeInstanceOf(RateLimitError);
  });

  it("no identity: AuthenticationError before any request", async () => {
    const nobody = new HexrClient({ sidecarUrl: fake.url, identity: new NoJwtSvidSource() });
    await expect(anthropicClient({ client: nobody })).rejects.toBeInstanceOf(AuthenticationError);
    await expect(azureOpenaiClient({ client: nobody })).rejects.toBeInstanceOf(AuthenticationError);
    expect(fake.requests).toEqual([]);
  });
});

// ---- errors ---------------------------------------------------------------------------------------

describe("errors", () => {
  it("maps the sidecar's refusals to the SDK's errors", async () => {
    fake.deniedModels.add("gpt-4o");
    const denied = await rejection(hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, client }));
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect([denied.status, denied.message]).toEqual([403, "the model is not granted to this identity"]);

    fake.deniedModels.clear();
    fake.budgetExhausted = true;
    const budget = await rejection(hexrLlm({ provider: "anthropic", model: "claude-test-model", prompt: PROMPT, client }));
    expect(budget).toBeInstanceOf(BudgetExceededError);
    expect(budget).toBeInstanceOf(CredentialError);
    expect([budget.status, (budget as BudgetExceededError).retryAfter]).toEqual([429, 30]);

    fake.budgetExhausted = false;
    fake.revoked.add(WRITER);
    await expect(hexrLlm({ provider: "azure_openai", model: "gpt4o-prod", prompt: PROMPT, client })).rejects.toBeInstanceOf(AccessDeniedError);
  });

  it("the sidecar's 401 is an AuthenticationError", async () => {
    const forged = { description: "forged", fetchJwtSvid: async () => ({ token: "not-a-jwt", spiffeId: WRITER, expiresAt: 9e9 }) };
    const error = await rejection(hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, client: new HexrClient({ sidecarUrl: fake.url, identity: forged }) }));
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(JSON.stringify(error)).not.toContain("not-a-jwt");
  });

  it.each([
    ["openai", "gpt-4o", 429, { error: { message: "Rate limit reached for gpt-4o", type: "requests", param: null, code: "rate_limit_exceeded" } }, "requests", "Rate limit reached for gpt-4o"],
    ["anthropic", "claude-test-model", 529, { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, "overloaded_error", "Overloaded"],
    ["azure_openai", "gpt4o-prod", 400, { error: { code: "content_filter", message: "The response was filtered" } }, "content_filter", "The response was filtered"],
    ["openai", "gpt-4o", 403, { error: { type: "CredentialError", message: "x", code: "y" } }, "CredentialError", "x"], // not exactly the contract's shape
  ] as const)("a %s error answer (%s, %d) is a ProviderError", async (provider, model, status, body, errorType, message) => {
    fake.providerError = { status, body };
    const error = await rejection(hexrLlm({ provider, model, prompt: PROMPT, client }));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).not.toBeInstanceOf(CredentialError);
    const e = error as ProviderError;
    expect([e.provider, e.status, e.errorType, e.message, e.retryAfter]).toEqual([provider, status, errorType, message, 7]);
    expect(String(e)).not.toContain(PROMPT);
  });
});

// ---- spans ----------------------------------------------------------------------------------------

function expectNoContent(span: ReadableSpan, ...secrets: string[]) {
  const texts = [span.name, JSON.stringify(span.attributes), JSON.stringify(span.events), String(span.status.message)];
  for (const secret of secrets) for (const text of texts) expect(text).not.toContain(secret);
}

describe("spans", () => {
  it("one span per call, GenAI conventions, the caller's SPIFFE ID, no content", async () => {
    const write = hexrAgent({ name: "content-crew", tenant: "acme-corp", role: "writer" }, () =>
      hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, temperature: 0.3, max_tokens: 100, client }),
    );
    await write();
    const [span] = spans.getFinishedSpans().filter((s) => s.name === "chat gpt-4o");
    expect(span.kind).toBe(2); // CLIENT
    expect(span.attributes).toEqual({
      "gen_ai.operation.name": "chat",
      "gen_ai.system": "openai",
      "gen_ai.provider.name": "openai",
      "hexr.llm.provider": "openai",
      "gen_ai.request.model": "gpt-4o",
      "gen_ai.request.temperature": 0.3,
      "gen_ai.request.max_tokens": 100,
      "hexr.agent": "content-crew",
      "hexr.tenant": "acme-corp",
      "hexr.process_role": "writer",
      "hexr.spiffe_id": WRITER,
      "http.response.status_code": 200,
      "gen_ai.response.model": "gpt-4o-2024-08-06",
      "gen_ai.response.id": "chatcmpl-fake1",
      "gen_ai.response.finish_reasons": ["stop"],
      "gen_ai.usage.input_tokens": 12,
      "gen_ai.usage.cache_read.input_tokens": 0,
      "gen_ai.usage.output_tokens": 5,
    });
    expectNoContent(span, PROMPT, "NIGHTJAR", REPLY, "nominal", token, PLACEHOLDER_KEY);
  });

  it("anthropic counts every input token", async () => {
    await hexrLlm({ provider: "anthropic", model: "claude-test-model", prompt: PROMPT, client });
    const [span] = spans.getFinishedSpans().filter((s) => s.name === "chat claude-test-model");
    expect(span.attributes).toMatchObject({
      "gen_ai.system": "anthropic", "gen_ai.request.max_tokens": 1024, "gen_ai.usage.input_tokens": 16,
      "gen_ai.usage.cache_read.input_tokens": 4, "gen_ai.usage.cache_creation.input_tokens": 2, "gen_ai.usage.output_tokens": 6,
      "gen_ai.response.finish_reasons": ["end_turn"],
    });
    expectNoContent(span, PROMPT, REPLY);
  });

  it("errors: status, type, no content", async () => {
    fake.budgetExhausted = true;
    await expect(hexrLlm({ provider: "azure_openai", model: "gpt4o-prod", prompt: PROMPT, client })).rejects.toThrow();
    fake.budgetExhausted = false;
    fake.providerError = { status: 400, body: { error: { message: `bad request about ${PROMPT}`, type: "invalid_request_error", param: null, code: null } } };
    await expect(hexrLlm({ provider: "openai", model: "gpt-4o", prompt: PROMPT, client })).rejects.toThrow();
    const [budget, provider] = spans.getFinishedSpans().filter((s) => s.name.startsWith("chat "));
    expect(budget.attributes).toMatchObject({ "gen_ai.provider.name": "azure.ai.openai", "gen_ai.system": "az.ai.openai", "error.type": "CredentialError", "http.status_code": 429 });
    expect(budget.status.code).toBe(2); // ERROR
    expect(provider.attributes).toMatchObject({ "error.type": "ProviderError", "http.status_code": 400 });
    for (const span of [budget, provider]) {
      expect(span.events).toEqual([]);
      expectNoContent(span, PROMPT);
    }
  });
});

// ---- usage and the cost tree ----------------------------------------------------------------------

const row = (spiffe_id: string, input_tokens: number, output_tokens: number, cost_nanousd: number, extra: Partial<UsageRow> = {}): UsageRow => ({
  spiffe_id, provider: "openai", model: "gpt-4o", requests: 1, input_tokens, cached_input_tokens: 0, cache_write_tokens: 0, output_tokens, cost_nanousd, ...extra,
});
const SEEDS_ROWS = [row(RESEARCHER, 1200, 800, 28_000_000), row(WRITER, 3400, 2100, 89_000_000, { requests: 2 }), row(EDITOR, 800, 400, 19_000_000)];
const SEEDS_TREE = `Trace: content-crew
├── spiffe://…/content-crew/researcher
│   └── gpt-4o: 1,200 input + 800 output tokens ($0.028)
├── spiffe://…/content-crew/writer
│   └── gpt-4o: 3,400 input + 2,100 output tokens ($0.089)
└── spiffe://…/content-crew/editor
    └── gpt-4o: 800 input + 400 output tokens ($0.019)

Total: $0.136
`;

describe("usage", () => {
  it("costTree prints the seeds' tree", () => {
    expect(costTree(SEEDS_ROWS)).toBe(SEEDS_TREE);
  });

  it("costTree: several models per role, one tree per agent (as the Python SDK prints them)", () => {
    const rows = [
      ...SEEDS_ROWS.slice(0, 2),
      row(WRITER, 5000, 300, 7_500_000, { provider: "anthropic", model: "claude-sonnet-4-5", cached_input_tokens: 4000 }),
      row("spiffe://hexr.local/agent/acme-corp/data-pipeline/main", 900, 90, 189_000, { model: "gpt-4o-mini", requests: 3 }),
    ];
    expect(costTree(rows)).toBe(`Trace: content-crew
├── spiffe://…/content-crew/researcher
│   └── gpt-4o: 1,200 input + 800 output tokens ($0.028)
└── spiffe://…/content-crew/writer
    ├── gpt-4o: 3,400 input + 2,100 output tokens ($0.089)
    └── claude-sonnet-4-5: 5,000 input (4,000 cached) + 300 output tokens ($0.008)

Total: $0.125

Trace: data-pipeline
└── spiffe://…/data-pipeline/main
    └── gpt-4o-mini: 900 input + 90 output tokens ($0.000189)

Total: $0.000189
`);
  });

  it("llmUsage: an admin sees every row, any other identity its own", async () => {
    fake.usageRows = SEEDS_ROWS;
    fake.admins.add(ADMIN);
    as(ADMIN);
    expect((await llmUsage({ client })).map((r) => r.spiffe_id)).toEqual([RESEARCHER, WRITER, EDITOR]);
    as(WRITER);
    expect(await llmUsage({ client })).toEqual([SEEDS_ROWS[1]]);
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /v1/llm/usage", "GET /v1/llm/usage"]);
    fake.revoked.add(WRITER);
    await expect(llmUsage({ client })).rejects.toBeInstanceOf(AccessDeniedError);
  });
});
