// The LLM route against a direct call: what the sidecar's route (POST /v1/llm/openai/v1/chat/completions)
// adds to a streamed chat completion. The same request, a fixed prompt with "stream": true and
// stream_options.include_usage, goes
//   llm-direct  straight to the loopback provider emulator (support/llm-provider.ts), the API key as
//               bearer: what the agent would pay without the sidecar;
//   llm-route   through the LLM route of a sidecar of its own ("bench-llm", rendered by the stack's own
//               code exactly as `startStack({ llm })` renders one), the JWT-SVID as bearer: jwt_authn, the
//               LLM filter (the key from L1, put in the vault beforehand and warmed by the first call;
//               the model checked in the body), the buffer filter, Envoy → emulator, and the answer's
//               server-sent events read for usage by the filter on their way back.
// The emulator runs in the benchmark's own Node process (idle while wrk runs), unpinned; both
// scenarios send it the same request and get the same answer (EVENTS chunks), so what differs is the
// route. The LLM route gets a sidecar of its own so that pod-a, and every Envoy derived from its
// config, stays as it was: no LLM filter, routes or VM beside the exchange filter.
//
// Latency to the last byte and throughput come from wrk (it reads a chunked SSE answer to its end,
// as any HTTP/1.1 body). Time to the first byte, which wrk does not report, comes from a second
// closed-loop run after each latency run: a raw-socket client (CLIENT_SCRIPT, plain Node, pinned to
// wrk's core) that times the first byte of the answer and its last (the terminating chunk).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { promisify } from "node:util";
import YAML from "yaml";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { startLlmProvider, type LlmProvider } from "../support/llm-provider.ts";
import { freePort } from "../support/processes.ts";
import { adminRequest, createEnvoySidecar, type EnvoySidecar } from "../stack/envoy.ts";
import { defaultLlmWasmPath, defaultWasmPath, nativeSidecarValues, type Stack } from "../stack/index.ts";
import { LLM_ADMIN_ID } from "../stack/defaults.ts";
import { loadLlmSection } from "../stack/render.ts";
import { LLM_AGENT_ID, LLM_KEY_SECRET, llmChatSpec, secretPut } from "./agent.ts";
import { busyShare, CORES, findProcess, machineCpu, pinProcess } from "./cpu.ts";
import { sendAll } from "./fill.ts";
import { measure, type Measurement, type RunKind } from "./measure.ts";
import type { RunShape, Scenario } from "./scenarios.ts";
import { errorCount, runWrk, type RequestSpec } from "./wrk.ts";

const run = promisify(execFile);

/** Connections of the throughput runs of both LLM scenarios: a handful of agents streaming at once. */
export const LLM_THROUGHPUT_CONNECTIONS = 8;

/** Percentiles of one client run, µs. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

/** The raw-socket client's closed-loop run: time to the first byte and to the last byte of each answer. */
export interface ClientRun {
  requests: number;
  firstByteUs: Percentiles;
  lastByteUs: Percentiles;
}

/** A latency run of an LLM scenario carries the client's run made right after wrk's. */
export interface LlmMeasurement extends Measurement {
  client?: ClientRun;
}

/** The answer both scenarios get, as the emulator streams it. */
export interface LlmAnswer {
  /** Server-sent events (`data:` lines), the final `[DONE]` included. */
  events: number;
  /** Bytes of the body (the events). */
  bytes: number;
  /** Its usage chunk: prompt and completion tokens. */
  promptTokens: number;
  completionTokens: number;
}

export interface LlmBench {
  scenarios: Scenario[];
  answer: LlmAnswer;
  /** Stops the sidecar and the emulator (again: nothing). */
  stop(): Promise<void>;
}

/**
 * Starts the emulator and the LLM sidecar, puts the provider key into the vault for the agent, and
 * checks both paths answer the same stream before any run.
 */
export async function startLlmBench(options: { stack: Stack; concurrency: number }): Promise<LlmBench> {
  const { stack } = options;
  const key = `sk-proj-bench-${randomBytes(24).toString("base64url")}`;
  const provider = await startLlmProvider({ keys: { openai: [key] } });
  let sidecar: EnvoySidecar | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await sidecar?.stop();
    await provider.stop();
  };
  try {
    sidecar = await startLlmSidecar(stack, provider, options.concurrency);
    const pid = findProcess(sidecar.configPath);
    pinProcess(pid, CORES.envoy);
    const token = await mintJwtSvid(LLM_AGENT_ID);
    await sendAll({ baseUrl: sidecar.agentUrl, count: 1, request: () => secretPut(token, LLM_KEY_SECRET, key), expectStatus: 201 });

    const direct = llmChatSpec("/v1/chat/completions", `Bearer ${key}`);
    const routed = llmChatSpec("/v1/llm/openai/v1/chat/completions", `Bearer ${token}`);
    const answer = await checkSameAnswer(provider, key, { url: provider.url, request: direct }, { url: sidecar.agentUrl, request: routed });
    const connections = countConnections(provider.port);
    const scenarios: Scenario[] = [
      directScenario(provider, direct, connections),
      routeScenario(provider, key, { url: sidecar.agentUrl, adminSocket: sidecar.adminSocket, pid }, routed),
    ];
    return { scenarios, answer, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A sidecar on free ports, rendered by the stack's own code from pod-a's filter configuration plus
 * the `llm` section the stack ships (envoy/llm-filter.json, with LLM_ADMIN_ID as its admin, as
 * `startStack({ llm })` adds it), serving OpenAI only, forwarded to the emulator.
 */
async function startLlmSidecar(stack: Stack, provider: LlmProvider, concurrency: number): Promise<EnvoySidecar> {
  const shipped = loadLlmSection() as { providers: Record<string, unknown> };
  const filterConfiguration = {
    ...exchangeFilterConfiguration(stack.envoy.configPath),
    llm: { admin_spiffe_ids: [LLM_ADMIN_ID], ...shipped, providers: { openai: shipped.providers.openai } },
  };
  const sidecarPorts = { agent: await freePort(), agentMtls: await freePort(), metadata: await freePort(), stats: await freePort() };
  const sidecar = createEnvoySidecar({
    name: "bench-llm",
    runDir: stack.runDir,
    concurrency,
    values: nativeSidecarValues({
      sidecarPorts, ports: stack.ports, identity: stack.identity, wasmPath: defaultWasmPath, filterConfiguration,
      llm: { wasmPath: defaultLlmWasmPath, providers: { openai: provider.url } },
    }),
  });
  await sidecar.start();
  return sidecar;
}

/** The exchange filter's configuration in a rendered sidecar config (the wasm plugin's configuration). */
function exchangeFilterConfiguration(configPath: string): Record<string, unknown> {
  const config = YAML.parse(readFileSync(configPath, "utf8"));
  const listener = config.static_resources.listeners.find((l: { name: string }) => l.name === "agent_http");
  const wasm = listener.filter_chains[0].filters[0].typed_config.http_filters.find((f: { name: string }) => f.name === "envoy.filters.http.wasm");
  return JSON.parse(wasm.typed_config.config.configuration.value);
}

/** Accepted connections on `port` of this process (the emulator's), counted as they come. */
function countConnections(port: number): () => number {
  let accepted = 0;
  diagnosticsChannel.subscribe("net.server.socket", (message) => {
    if ((message as { socket: Socket }).socket.localPort === port) accepted++;
  });
  return () => accepted;
}

type RunOptions = { kind: RunKind; round: number; run: RunShape; workDir: string };

/** The emulator's record of the run's calls: every one answered 200, with usage, and with the key it expects. */
function checkCalls(provider: LlmProvider, key: string, requests: number, what: string): void {
  const calls = provider.calls.splice(0);
  const bad = calls.find((call) => call.status !== 200 || !call.usage || call.headers.authorization !== `Bearer ${key}`);
  if (bad) throw new Error(`${what}: the emulator answered ${bad.status} (usage ${bad.usage ? "reported" : "none"}) to a call with ${bad.headers.authorization === `Bearer ${key}` ? "the" : "another"} key`);
  if (calls.length < requests) throw new Error(`${what}: wrk counted ${requests} answers, the emulator ${calls.length} calls`);
}

function directScenario(provider: LlmProvider, request: RequestSpec, accepted: () => number): Scenario {
  const scenario: Scenario = {
    id: "llm-direct",
    title: "LLM call, direct",
    what: `${describe(request)} straight to the loopback provider emulator, the API key as bearer (no sidecar); ` +
      `throughput runs with ${LLM_THROUGHPUT_CONNECTIONS} connections`,
    // Not an Envoy: no admin socket; the process is the benchmark's own (the emulator runs in it).
    target: { url: provider.url, adminSocket: "", pid: process.pid },
    throughputConnections: LLM_THROUGHPUT_CONNECTIONS,
    prepare: async () => request,
    async measure({ kind, round, run, workDir }: RunOptions): Promise<LlmMeasurement> {
      provider.calls.splice(0);
      const acceptedBefore = accepted();
      const machineBefore = machineCpu();
      const wrk = await runWrk({ url: provider.url, request, connections: run.connections, seconds: run.seconds, cpu: CORES.loadGenerator, workDir });
      const measurement: LlmMeasurement = {
        scenario: scenario.id,
        kind,
        round,
        wrk,
        errors: errorCount(wrk),
        // No Envoy in the way: its columns stay empty.
        envoyCpuUsPerRequest: NaN,
        envoyBusy: NaN,
        machineBusy: busyShare(machineBefore, machineCpu()),
        newConnections: accepted() - acceptedBefore,
      };
      checkCalls(provider, bearerOf(request), wrk.requests, scenario.title);
      if (kind === "latency") measurement.client = await clientRun(provider.url, request, run.seconds);
      provider.calls.splice(0);
      return measurement;
    },
  };
  return scenario;
}

function routeScenario(provider: LlmProvider, key: string, target: Scenario["target"], request: RequestSpec): Scenario {
  const scenario: Scenario = {
    id: "llm-route",
    title: "LLM call, sidecar route",
    what:
      `${describe(request)} through the sidecar's LLM route, the JWT-SVID as bearer: jwt_authn, the LLM filter ` +
      "(provider key from L1, model checked, usage read from the stream), Envoy → the same emulator; " +
      `throughput runs with ${LLM_THROUGHPUT_CONNECTIONS} connections`,
    target,
    // Every key from L1 (the filter's tier counters, checked by bench/measure.ts).
    tier: "L1",
    throughputConnections: LLM_THROUGHPUT_CONNECTIONS,
    // The first call of each run's preparation keeps the key warm in L1 (and refreshes it if it must).
    async prepare() {
      await sendAll({ baseUrl: target.url, count: 1, request: () => request, expectStatus: 200 });
      return request;
    },
    async measure(options: RunOptions): Promise<LlmMeasurement> {
      const before = await usageCounters(target.adminSocket);
      const measurement: LlmMeasurement = await measure({ scenario, ...options });
      checkCalls(provider, key, measurement.wrk.requests, scenario.title);
      // Every answer's usage was read by the filter and recorded; wrk ends a run by closing its
      // connections, so the streams still open then (one per connection at most) end unread.
      const after = await usageCounters(target.adminSocket);
      const recorded = after.requests - before.requests;
      if (recorded < measurement.wrk.requests || after.unreadable - before.unreadable > options.run.connections) {
        throw new Error(`${scenario.title}: wrk counted ${measurement.wrk.requests} answers, the filter recorded ${recorded}, ${after.unreadable - before.unreadable} unreadable`);
      }
      if (options.kind === "latency") measurement.client = await clientRun(target.url, request, options.run.seconds);
      provider.calls.splice(0);
      return measurement;
    },
  };
  return scenario;
}

function describe(request: RequestSpec): string {
  const body = JSON.parse(request.body ?? "{}");
  return `POST ${request.path} (${body.model}, "stream": true with include_usage, a fixed prompt)`;
}

function bearerOf(request: RequestSpec): string {
  return request.headers.authorization.replace(/^Bearer /, "");
}

/**
 * The LLM filter's own counters: calls recorded (the requests counter of every usage row), answers
 * whose usage it could not read. A row's counter carries its tags in its name, a SPIFFE ID among
 * them (`wasmcustom.hexr_llm_requests;provider=…;model=…;spiffe_id=spiffe://…`), so the lines are
 * split at their last ": ", not at the first colon as parseStats does.
 */
async function usageCounters(adminSocket: string): Promise<{ requests: number; unreadable: number }> {
  // The filter hands its counters to Envoy on its tick (metrics_flush_ms, 250 in the local stack).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const answer = await adminRequest(adminSocket, `/stats?filter=${encodeURIComponent("^wasmcustom\\.hexr_llm_(requests|unreadable_usage)")}`);
  if (answer.status !== 200) throw new Error(`admin /stats answered ${answer.status}`);
  let requests = 0;
  let unreadable = 0;
  for (const line of answer.text.split("\n")) {
    const at = line.lastIndexOf(": ");
    if (at < 0 || !/^\d+$/.test(line.slice(at + 2).trim())) continue;
    const value = Number(line.slice(at + 2).trim());
    if (line.startsWith("wasmcustom.hexr_llm_requests;")) requests += value;
    else if (line.startsWith("wasmcustom.hexr_llm_unreadable_usage")) unreadable += value;
  }
  return { requests, unreadable };
}

/**
 * Asks both ways once (the route's first call also puts the key in L1) and checks the answers are
 * the same stream: 200, text/event-stream, the same events but for their ids and timestamps, a
 * usage chunk; and that the emulator got the vault's key from the sidecar.
 */
async function checkSameAnswer(
  provider: LlmProvider, key: string, direct: { url: string; request: RequestSpec }, routed: { url: string; request: RequestSpec },
): Promise<LlmAnswer> {
  const read = async ({ url, request }: { url: string; request: RequestSpec }) => {
    const answer = await fetch(`${url}${request.path}`, { method: request.method, headers: request.headers, body: request.body });
    const text = await answer.text();
    if (answer.status !== 200 || !answer.headers.get("content-type")?.startsWith("text/event-stream")) {
      throw new Error(`POST ${url}${request.path} answered ${answer.status} ${answer.headers.get("content-type")}: ${text.slice(0, 300)}`);
    }
    return text;
  };
  await read(routed);
  const routedText = await read(routed);
  const directText = await read(direct);
  checkCalls(provider, key, 3, "the first calls");
  const shape = (text: string) => text.replace(/"(id|created|system_fingerprint)":("[^"]*"|\d+)/g, '"$1":_');
  if (shape(routedText) !== shape(directText)) {
    throw new Error(`the LLM route's answer differs from the direct one:\n${routedText.slice(0, 600)}\n---\n${directText.slice(0, 600)}`);
  }
  const events = directText.split("\n").filter((line) => line.startsWith("data:"));
  const usage = events.map((line) => line.slice(5).trim()).filter((data) => data !== "[DONE]").map((data) => JSON.parse(data).usage).find((u) => u);
  if (!usage || events.at(-1)?.trim() !== "data: [DONE]") throw new Error(`the streamed answer has no usage chunk or no [DONE]:\n${directText.slice(0, 600)}`);
  return { events: events.length, bytes: Buffer.byteLength(directText), promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens };
}

// ---- time to the first byte ----

/**
 * A closed-loop client on one kept-alive connection, in plain Node (run as `node -e`, pinned to
 * wrk's core): writes the request, notes when the first byte of the answer arrives and when its
 * terminating chunk does, then sends the next. Every answer must be a 200 with a chunked body.
 * Prints one JSON line of percentiles (µs).
 */
const CLIENT_SCRIPT = String.raw`
const net = require("node:net");
const { host, port, request, seconds } = JSON.parse(process.env.BENCH_LLM_CLIENT);
const bytes = Buffer.from(request, "utf8");
const first = [], last = [];
const until = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
const socket = net.connect({ host, port, noDelay: true });
let sentAt = 0n, firstAt = 0n, head = "", tail = "";
const send = () => { sentAt = process.hrtime.bigint(); firstAt = 0n; head = ""; tail = ""; socket.write(bytes); };
socket.on("connect", send);
socket.on("data", (data) => {
  const now = process.hrtime.bigint();
  if (firstAt === 0n) firstAt = now;
  if (!head.includes("\r\n\r\n") && head.length < 8192) head += data.toString("latin1", 0, Math.min(data.length, 8192));
  tail = (tail + data.toString("latin1", Math.max(0, data.length - 7))).slice(-7);
  if (tail !== "\r\n0\r\n\r\n") return;
  if (!head.startsWith("HTTP/1.1 200") || !/\r\ntransfer-encoding: chunked\r\n/i.test(head)) {
    console.error("not a 200 chunked answer: " + head);
    process.exit(1);
  }
  first.push(Number(firstAt - sentAt) / 1000);
  last.push(Number(now - sentAt) / 1000);
  if (now < until) send(); else done();
});
socket.on("error", (error) => { console.error(String(error)); process.exit(1); });
function percentiles(values) {
  const sorted = Float64Array.from(values).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const round = (us) => Math.round(us * 10) / 10;
  return { p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), mean: round(values.reduce((a, b) => a + b, 0) / values.length) };
}
function done() {
  socket.destroy();
  console.log(JSON.stringify({ requests: first.length, firstByteUs: percentiles(first), lastByteUs: percentiles(last) }));
}
`;

async function clientRun(baseUrl: string, request: RequestSpec, seconds: number): Promise<ClientRun> {
  const url = new URL(baseUrl);
  const body = request.body ?? "";
  const head = [
    `${request.method} ${request.path} HTTP/1.1`,
    `host: ${url.host}`,
    ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`),
    `content-length: ${Buffer.byteLength(body)}`,
  ];
  const raw = `${head.join("\r\n")}\r\n\r\n${body}`;
  const { stdout } = await run("taskset", ["-c", String(CORES.loadGenerator), process.execPath, "-e", CLIENT_SCRIPT], {
    env: { ...process.env, BENCH_LLM_CLIENT: JSON.stringify({ host: url.hostname, port: Number(url.port), request: raw, seconds }) },
    timeout: (seconds + 30) * 1000,
  });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}
