// `npm run bench`: starts the real stack, warms it, and measures every scenario of issue 5 in one
// run on this machine, then writes bench/results/ (Markdown, JSON, PNG chart).
//
//   tsx bench/main.ts            the full plan (bench/plan.ts), 9 to 11 minutes here
//   tsx bench/main.ts --quick    a short pass to check the harness; results go to a scratch folder
//   tsx bench/main.ts --doors    only the stock-SDK doors' GET L1 hits and their wasm floors (the full
//                                plan's rounds, about 2 minutes with the stack's start; with --quick, one
//                                round); results go to a scratch folder of their own
//
// Cores: every Envoy under test runs with --concurrency 1, pinned to core 0; wrk (one thread) and
// the pass-through's trivial upstream are pinned to core 1; the injector, OPA, moto, the bridge,
// Valkey and the vault are left to the scheduler. See the results' "conditions" for the load seen
// meanwhile.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { freePort } from "../support/processes.ts";
import { projectRoot, tools } from "../support/tools.ts";
import { DEMO_AGENT_ID, startStack, type EnvoySidecar, type Stack } from "../stack/index.ts";
import { awsDoorSpec, exchangeBody, exchangeRequest, exchangeSpec, gceDoorSpec, KEY_PREFIX, KeySequence, WARM_REGION } from "./agent.ts";
import { renderChart } from "./chart.ts";
import { CORES, findProcess, loadAverage, pinProcess, requireTwoCores } from "./cpu.ts";
import {
  adminSocketFor, METADATA_LISTENER_PREFIX, shippedWasmOnPassThrough, startEnvoy, startVariant, upstreamConfig, type BenchEnvoy, type FloorAnswer,
  type Variant,
} from "./envoys.ts";
import { runHostBench, type HostBench } from "./host-bench.ts";
import { measureL1Growth } from "./l1-growth.ts";
import { LLM_THROUGHPUT_CONNECTIONS, startLlmBench, type LlmBench } from "./llm.ts";
import { L2Pool } from "./l2-pool.ts";
import { measure, type Measurement, type RunKind } from "./measure.ts";
import { FULL_PLAN, QUICK_PLAN, type Plan } from "./plan.ts";
import { profileDuring } from "./profile.ts";
import {
  compareDoors, compareFloors, compareLlm, compareSecretRead, doorsMarkdown, doorTargets, evaluateTargets, llmTable, llmTarget, machineBusy,
  memoryFindings, scenarioTable, secretReadTable, summarize, toMarkdown, type Conditions, type DoorResults, type Results,
} from "./report.ts";
import {
  doorScenarios, floorScenarios, l1HitScenario, l2HitScenario, l3MissScenario, noFilterScenario, passThroughScenarios, secretReadScenario,
  type DoorName, type RunShape, type Scenario, type ScenarioId, type Target,
} from "./scenarios.ts";
import type { RequestSpec } from "./wrk.ts";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes("--quick");
const doorsOnly = process.argv.includes("--doors");
const plan: Plan = quick ? QUICK_PLAN : FULL_PLAN;
const resultsDir = path.join(benchDir, "results", ...(quick ? ["quick"] : []), ...(doorsOnly ? ["doors"] : []));
const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

/**
 * The order of the runs within a round: what a target compares sits side by side (the L1 hit
 * between the wasm floor and the authenticated floor, the direct_response floor next to them; the
 * pass-through without wasm between its two wasm chains; L1 hit and no filter), so both see the
 * same background load. The secret read comes after them, so that no compared pair is split by it,
 * and the LLM call last, direct and through the route back to back. Every other round runs in the
 * reverse order.
 */
const RUN_ORDER: ScenarioId[] = [
  "pass-through-ignored", "pass-through-plain", "pass-through-shipped", "floor", "wasm-floor", "l1-hit", "floor-jwt", "no-filter",
  "aws-wasm-floor", "aws-l1-hit", "gce-l1-hit", "gce-wasm-floor", "l2-hit", "l3-miss", "secret-read", "llm-direct", "llm-route",
];

/** The wasm floor's module, built by bench/run.sh from bench/wasm-floor/ (its own asconfig.json). */
const WASM_FLOOR_PATH = path.join(projectRoot, "build", "wasm_floor.wasm");
const WASM_FLOOR_BUILD = "asc bench/wasm-floor/floor.ts --config bench/wasm-floor/asconfig.json --target release";

/** Headers Envoy puts on every local reply itself: not the filter's, so not the wasm floor's to send. */
const ENVOY_REPLY_HEADERS = new Set(["date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"]);

/** L2 entries written by the benchmark stay servable this long (beyond the run and the refresh buffer). */
const SYNTHETIC_LIFETIME_SECONDS = 2 * 3600;

requireTwoCores();
if (!existsSync(WASM_FLOOR_PATH)) throw new Error(`${WASM_FLOOR_PATH} is missing: run \`npm run bench\` (bench/run.sh), or ${WASM_FLOOR_BUILD}`);
const startedAt = new Date();
const loadBefore = loadAverage();
log(`plan: ${quick ? "quick" : "full"}${doorsOnly ? ", stock-SDK doors only" : ""}; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);

// The host-test lifecycle first, while nothing of the stack runs yet (about 15 s); --doors skips it.
let hostBench: HostBench | undefined;
if (!doorsOnly) {
  log("host-test: the L1-hit lifecycle in the TypeScript host (host-test/bench.ts)");
  hostBench = await runHostBench();
  log("error" in hostBench ? `host-test not measured: ${hostBench.error}` : `host-test L1-hit lifecycle median ${hostBench.l1MedianUs.toFixed(2)} µs`);
}

// Distinct keys come from regions made up per request (bench/agent.ts), tens of thousands for one
// identity: the region allow-list and the key caps, which bound an agent's keys in production,
// are lifted for the benchmark's sidecars.
const UNBOUNDED_KEYS = { regions: { aws: "any" }, max_keys_per_identity: 1_000_000, max_keys: 10_000_000 };
const stack = await startStack({ concurrency: plan.envoyConcurrency, filterOverrides: UNBOUNDED_KEYS });
const extraEnvoys: BenchEnvoy[] = [];
/** The LLM provider emulator and the LLM route's sidecar (bench/llm.ts), full runs only. */
let llmBench: LlmBench | undefined;
try {
  const full = hostBench ? await benchmark(stack, hostBench) : undefined;
  const results: DoorResults = full ?? (await benchmarkDoors(stack));
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, "results.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(path.join(resultsDir, "results.md"), full ? toMarkdown(full) : doorsMarkdown(results));
  if (full) writeFileSync(path.join(resultsDir, "latency.png"), renderChart(full));
  console.log("\n" + scenarioTable(results) + "\n");
  if (full) console.log(secretReadTable(full) + "\n\n" + llmTable(full) + "\n");
  for (const t of results.targets) {
    console.log(`${t.met === null ? "      " : t.met ? "met   " : "MISSED"}  ${t.name}: ${t.goal} — ${t.measured} (before: ${t.before})`);
  }
  log(`results in ${path.relative(process.cwd(), resultsDir)}/ (results.md, results.json${full ? ", latency.png" : ""})`);
} finally {
  await Promise.allSettled([...extraEnvoys.map((e) => e.stop()), llmBench?.stop()]);
  await stack.stop();
}

async function benchmark(stack: Stack, hostBench: HostBench): Promise<Results> {
  const workDir = path.join(stack.runDir, "bench");
  mkdirSync(workDir, { recursive: true });
  const token = await mintJwtSvid(DEMO_AGENT_ID);

  // The sidecars under test, each pinned: pod-a serves L1 hits (one warm key per door), "bench-miss"
  // the L2 hits and L3 misses (keys it never saw), so neither disturbs the other's L1.
  const l1Sidecar = sidecarTarget(stack.envoy);
  const missEnvoy = await stack.addSidecar("bench-miss");
  const missSidecar = sidecarTarget(missEnvoy);
  const restartMissSidecar = async () => {
    await missEnvoy.restart();
    missSidecar.pid = findProcess(missEnvoy.configPath);
    pinProcess(missSidecar.pid, CORES.envoy);
  };

  // A real credential: the body every synthetic entry and every direct_response is made from.
  const credentialBody = await firstCredential(stack.envoy, token);
  const bodyFile = path.join(workDir, "credential.json");
  writeFileSync(bodyFile, credentialBody);
  // What the wasm floor answers: the L1 hit's own body and headers.
  const exchange = exchangeSpec(token, WARM_REGION);
  const l1Answer = await l1HitAnswer(l1Sidecar.url, exchange);

  const upstreamPort = await freePort();
  const upstreamAdmin = adminSocketFor(workDir, "upstream");
  const upstream = await startEnvoy({
    name: "upstream", config: upstreamConfig(upstreamPort, upstreamAdmin, bodyFile), workDir,
    port: upstreamPort, adminSocket: upstreamAdmin, concurrency: 1,
  });
  extraEnvoys.push(upstream);
  pinProcess(upstream.pid, CORES.loadGenerator);
  const variant = (name: Variant) => comparisonEnvoy(stack, workDir, { variant: name, bodyFile, upstreamPort });

  const expiresAt = Math.floor(Date.now() / 1000) + SYNTHETIC_LIFETIME_SECONDS;
  const pool = (prefix: string) => new L2Pool({ bridgeUrl: stack.parts.bridge.url, bridgeTls: stack.l2.bridgeTls, spiffeId: DEMO_AGENT_ID, credentialBody, expiresAt, prefix });
  const wasmFloorTarget = await comparisonEnvoy(stack, workDir, { variant: "wasm-floor", wasmFloor: { wasmPath: WASM_FLOOR_PATH, ...l1Answer } });
  await checkWasmFloor(wasmFloorTarget, exchange, l1Answer);
  const shippedRunsWasm = shippedWasmOnPassThrough(readFileSync(stack.envoy.configPath, "utf8"));
  log(`the sidecar as shipped ${shippedRunsWasm ? "runs" : "does not run"} the wasm filter on the pass-through route`);
  const scenarios: Scenario[] = [
    ...floorScenarios(token, await variant("floor"), await variant("floor-jwt"), wasmFloorTarget),
    ...passThroughScenarios(
      await variant("pass-through-plain"), await variant("pass-through-shipped"), await variant("pass-through-ignored"), shippedRunsWasm),
    l1HitScenario(token, l1Sidecar),
    l2HitScenario(token, missSidecar, pool(KEY_PREFIX.l2), restartMissSidecar),
    l3MissScenario(token, missSidecar, new KeySequence(KEY_PREFIX.miss)),
    noFilterScenario(token, await variant("no-filter")),
    ...(await stockSdkDoors(stack, token, l1Sidecar, workDir)),
    secretReadScenario(token, l1Sidecar),
  ];
  // The LLM route: a sidecar of its own, and the provider emulator it forwards to.
  llmBench = await startLlmBench({ stack, concurrency: plan.envoyConcurrency });
  scenarios.push(...llmBench.scenarios);

  const measurements = await runRounds(scenarios, workDir);

  log("profiling the sidecar on L1 hits, and the wasm floor and the floor with jwt_authn, for comparison");
  const profileRun = (scenario: Scenario) =>
    profileDuring(scenario.target.pid, plan.profileSeconds, workDir, () =>
      measure({ scenario, kind: "throughput", round: -1, run: { connections: plan.throughputConnections, seconds: plan.profileSeconds + 1 }, workDir }));
  const l1Profile = await profileRun(scenarios.find((s) => s.id === "l1-hit")!);
  const wasmFloorProfile = await profileRun(scenarios.find((s) => s.id === "wasm-floor")!);
  const floorJwtProfile = await profileRun(scenarios.find((s) => s.id === "floor-jwt")!);

  // The comparison Envoys are done; the growth phase gets a sidecar of its own.
  await Promise.allSettled([...extraEnvoys.map((e) => e.stop()), llmBench.stop()]);
  const growthSidecar = await stack.addSidecar("bench-growth");
  const growthPid = findProcess(growthSidecar.configPath);
  pinProcess(growthPid, CORES.envoy);
  const growth = await measureL1Growth({
    sidecar: growthSidecar, pid: growthPid, pool: pool(KEY_PREFIX.growth), token, spiffeId: DEMO_AGENT_ID,
    credentialBody, plan: plan.growth, workDir, log,
  });

  const summaries = summarize(scenarios, measurements);
  const memory = memoryFindings(growth);
  const floors = compareFloors(summaries, measurements);
  const doors = compareDoors(summaries, measurements);
  const llm = compareLlm(summaries, measurements, llmBench.answer, LLM_THROUGHPUT_CONNECTIONS);
  return {
    conditions: runConditions(measurements),
    plan,
    scenarios: summaries,
    targets: [...evaluateTargets(summaries, measurements, memory, floors, hostBench, doors), llmTarget(llm)],
    floors,
    doors,
    secretRead: compareSecretRead(summaries, measurements),
    llm,
    hostBench,
    growth,
    memory,
    profile: { l1Hit: l1Profile.outcome, wasmFloor: wasmFloorProfile.outcome, floorJwt: floorJwtProfile.outcome },
    measurements: [...measurements, l1Profile.result, wasmFloorProfile.result, floorJwtProfile.result],
  };
}

/** `--doors`: the stock-SDK doors' scenarios alone, in the same rounds as the full run. */
async function benchmarkDoors(stack: Stack): Promise<DoorResults> {
  const workDir = path.join(stack.runDir, "bench");
  mkdirSync(workDir, { recursive: true });
  const token = await mintJwtSvid(DEMO_AGENT_ID);
  const scenarios = await stockSdkDoors(stack, token, sidecarTarget(stack.envoy), workDir);
  const measurements = await runRounds(scenarios, workDir);
  const summaries = summarize(scenarios, measurements);
  const doors = compareDoors(summaries, measurements);
  return { conditions: runConditions(measurements), plan, scenarios: summaries, targets: doorTargets(doors), doors, measurements };
}

/**
 * The stock-SDK doors of the L1 sidecar (pod-a): the AWS door on its agent listener, the GCE door
 * on its first metadata listener (the same Envoy process, so the same pinning), each with a wasm
 * floor Envoy made to answer that door's own L1 answer from the same callback.
 */
async function stockSdkDoors(stack: Stack, token: string, l1Sidecar: Target, workDir: string): Promise<Scenario[]> {
  const awsUrl = stack.envoy.awsCredentialsUrl;
  const metadata = stack.envoy.metadataListeners[0];
  if (!awsUrl || !metadata?.gceMetadataHost) {
    throw new Error("the stack's sidecar opens no AWS door (aws_container) or no GCE door (a metadata listener with gce_metadata)");
  }
  // The metadata listener's stat prefix is its name (envoy/metadata-listener.yaml), the floor's too.
  const statPrefix = `${METADATA_LISTENER_PREFIX}${metadata.name}`;
  const aws = new URL(awsUrl);
  const doors: { door: DoorName; request: RequestSpec; sidecar: Target; floor: Variant }[] = [
    { door: "aws", request: awsDoorSpec(token, aws.pathname + aws.search), sidecar: l1Sidecar, floor: "wasm-floor" },
    {
      door: "gce", request: gceDoorSpec(), sidecar: { ...l1Sidecar, url: `http://${metadata.gceMetadataHost}`, statPrefix }, floor: "metadata-wasm-floor",
    },
  ];
  const scenarios: Scenario[] = [];
  for (const { door, request, sidecar, floor } of doors) {
    const answer = await l1HitAnswer(sidecar.url, request);
    const floorTarget = await comparisonEnvoy(stack, workDir, {
      variant: floor, name: `${door}-wasm-floor`, wasmFloor: { wasmPath: WASM_FLOOR_PATH, ...answer },
    }, sidecar.statPrefix);
    await checkWasmFloor(floorTarget, request, answer);
    scenarios.push(...doorScenarios(door, request, sidecar, floorTarget));
  }
  return scenarios;
}

/** Starts an Envoy derived from the sidecar's config (bench/envoys.ts), pinned where the sidecars under test are. */
async function comparisonEnvoy(
  stack: Stack, workDir: string, options: Pick<Parameters<typeof startVariant>[0], "variant" | "name" | "bodyFile" | "upstreamPort" | "wasmFloor">,
  statPrefix?: string,
): Promise<Target> {
  const envoy = await startVariant({ ...options, sidecarConfigPath: stack.envoy.configPath, workDir, concurrency: plan.envoyConcurrency });
  extraEnvoys.push(envoy);
  pinProcess(envoy.pid, CORES.envoy);
  return { url: envoy.url, adminSocket: envoy.adminSocket, pid: envoy.pid, statPrefix };
}

function runConditions(measurements: Measurement[]): Conditions {
  return {
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    cpuModel: cpus()[0]?.model ?? "unknown CPU",
    cpus: cpus().length,
    envoyVersion: envoyVersion(),
    pinning:
      `Every Envoy under test: --concurrency ${plan.envoyConcurrency}, all threads pinned to core ${CORES.envoy}; ` +
      `wrk (1 thread) and the pass-through's upstream Envoy pinned to core ${CORES.loadGenerator}; ` +
      "injector, OPA, moto, bridge, Valkey and the vault left to the scheduler.",
    loadBefore,
    loadAfter: loadAverage(),
    machineBusy: machineBusy(measurements),
  };
}

/**
 * A warm-up run of every scenario, then plan.rounds rounds of one latency and one throughput run
 * each. Warm-ups and resets count as round 0, which no summary uses.
 */
async function runRounds(scenarios: Scenario[], workDir: string): Promise<Measurement[]> {
  const measurements: Measurement[] = [];
  const latencyRun = { connections: 1, seconds: plan.latencySeconds };
  const throughputRun = (scenario: Scenario) => ({ connections: scenario.throughputConnections ?? plan.throughputConnections, seconds: plan.throughputSeconds });
  // A scenario that measures its runs itself (bench/llm.ts) does; bench/measure.ts measures the others.
  const measureRun = (scenario: Scenario, kind: RunKind, round: number, run: RunShape) =>
    scenario.measure ? scenario.measure({ kind, round, run, workDir }) : measure({ scenario, kind, round, run, workDir });
  const warmUp = async (scenario: Scenario) =>
    measurements.push(await measureRun(scenario, "throughput", 0, { ...throughputRun(scenario), seconds: plan.warmupSeconds }));

  const unordered = scenarios.filter((s) => !RUN_ORDER.includes(s.id));
  if (unordered.length > 0) throw new Error(`not in RUN_ORDER: ${unordered.map((s) => s.id).join(", ")}`);
  log("warming every scenario");
  for (const scenario of scenarios) await warmUp(scenario);
  for (let round = 1; round <= plan.rounds; round++) {
    log(`round ${round} of ${plan.rounds}`);
    for (const scenario of scenarios.filter((s) => s.beforeRound)) {
      await scenario.beforeRound!();
      await warmUp(scenario);
    }
    const order = round % 2 === 1 ? RUN_ORDER : [...RUN_ORDER].reverse();
    for (const scenario of order.flatMap((id) => scenarios.filter((s) => s.id === id))) {
      const latency = await measureRun(scenario, "latency", round, latencyRun);
      const throughput = await measureRun(scenario, "throughput", round, throughputRun(scenario));
      measurements.push(latency, throughput);
      log(`  ${scenario.title.padEnd(30)} p50 ${latency.wrk.latencyUs.p50} µs, ${Math.round(throughput.wrk.rps)} req/s`);
    }
  }
  return measurements;
}

function sidecarTarget(sidecar: EnvoySidecar): Target {
  const pid = findProcess(sidecar.configPath);
  pinProcess(pid, CORES.envoy);
  return { url: sidecar.agentUrl, adminSocket: sidecar.adminSocket, pid };
}

/** The warm key's credential, issued through the whole stack (L3), as the template of all others. */
async function firstCredential(sidecar: EnvoySidecar, token: string): Promise<string> {
  const { path: requestPath, headers } = exchangeRequest(token, WARM_REGION);
  const answer = await fetch(`${sidecar.agentUrl}${requestPath}`, { method: "POST", headers, body: exchangeBody(WARM_REGION) });
  const body = await answer.text();
  if (answer.status !== 200) throw new Error(`the first exchange answered ${answer.status}: ${body.slice(0, 300)}`);
  return body;
}

/** The headers the filter (or the wasm floor) set on an answer. */
function filterHeaders(answer: Response): [string, string][] {
  return [...answer.headers].filter(([name]) => !ENVOY_REPLY_HEADERS.has(name));
}

function send(baseUrl: string, request: RequestSpec): Promise<Response> {
  return fetch(`${baseUrl}${request.path}`, { method: request.method, headers: request.headers, body: request.body });
}

/**
 * `request` asked twice (the first may go to L3 and fill L1): the second must be an L1 hit. Its
 * body and headers are what that door's wasm floor answers.
 */
async function l1HitAnswer(baseUrl: string, request: RequestSpec): Promise<FloorAnswer> {
  await (await send(baseUrl, request)).arrayBuffer();
  const answer = await send(baseUrl, request);
  const body = await answer.text();
  const tier = answer.headers.get("x-hexr-cache");
  if (answer.status !== 200 || tier !== "L1") {
    throw new Error(`${request.method} ${request.path}: the L1 hit answered ${answer.status}, x-hexr-cache ${tier}: ${body.slice(0, 300)}`);
  }
  return { body, headers: filterHeaders(answer) };
}

/** The wasm floor answers `request` as the L1 hit does: status, the filter's headers, body. */
async function checkWasmFloor(target: Target, request: RequestSpec, expected: FloorAnswer): Promise<void> {
  const answer = await send(target.url, request);
  const body = await answer.text();
  const got = `${answer.status} ${JSON.stringify(filterHeaders(answer))}`;
  const want = `200 ${JSON.stringify(expected.headers)}`;
  if (got !== want || body !== expected.body) {
    throw new Error(
      `the wasm floor answered ${request.method} ${request.path} with ${got} and ${Buffer.byteLength(body)} bytes; ` +
        `expected ${want} and ${Buffer.byteLength(expected.body)} bytes`,
    );
  }
}

function envoyVersion(): string {
  const text = execFileSync(tools.envoy(), ["--version"], { encoding: "utf8" });
  return `Envoy ${/\/(\d+\.\d+\.\d+)\//.exec(text)?.[1] ?? "?"} (V8 wasm runtime)`;
}
