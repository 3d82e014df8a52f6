// `npm run bench`: starts the real stack, warms it, and measures every scenario of issue 5 in one
// run on this machine, then writes bench/results/ (Markdown, JSON, PNG chart).
//
//   tsx bench/main.ts            the full plan (bench/plan.ts), 7 to 9 minutes here
//   tsx bench/main.ts --quick    a short pass to check the harness; results go to a scratch folder
//
// Cores: every Envoy under test runs with --concurrency 1, pinned to core 0; wrk (one thread) and
// the pass-through's trivial upstream are pinned to core 1; the injector, OPA, moto, the bridge and
// Valkey are left to the scheduler. See the results' "conditions" for the load seen meanwhile.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mintJwtSvid } from "../scripts/dev-identity.ts";
import { freePort } from "../support/processes.ts";
import { tools } from "../support/tools.ts";
import { DEMO_AGENT_ID, startStack, type EnvoySidecar, type Stack } from "../stack/index.ts";
import { exchangeBody, exchangeRequest, KEY_PREFIX, KeySequence, WARM_REGION } from "./agent.ts";
import { renderChart } from "./chart.ts";
import { CORES, findProcess, loadAverage, pinProcess, requireTwoCores } from "./cpu.ts";
import { startEnvoy, startVariant, upstreamConfig, type BenchEnvoy, type Variant } from "./envoys.ts";
import { measureL1Growth } from "./l1-growth.ts";
import { L2Pool } from "./l2-pool.ts";
import { measure, type Measurement } from "./measure.ts";
import { FULL_PLAN, QUICK_PLAN, type Plan } from "./plan.ts";
import { profileDuring } from "./profile.ts";
import { evaluateTargets, machineBusy, memoryFindings, scenarioTable, summarize, toMarkdown, type Results } from "./report.ts";
import {
  floorScenarios, l1HitScenario, l2HitScenario, l3MissScenario, noFilterScenario, passThroughScenarios, type Scenario, type ScenarioId, type Target,
} from "./scenarios.ts";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes("--quick");
const plan: Plan = quick ? QUICK_PLAN : FULL_PLAN;
const resultsDir = path.join(benchDir, "results", ...(quick ? ["quick"] : []));
const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

/**
 * The order of the runs within a round: what a target compares sits side by side (floor and L1
 * hit, the two pass-through chains, L1 hit and no filter), so both see the same background load.
 */
const RUN_ORDER: ScenarioId[] = [
  "pass-through-skip", "pass-through-plain", "pass-through-wasm", "floor", "l1-hit", "no-filter", "l1-hit-jwt-cache", "floor-jwt",
  "l2-hit", "l3-miss",
];

/** L2 entries written by the benchmark stay servable this long (beyond the run and the refresh buffer). */
const SYNTHETIC_LIFETIME_SECONDS = 2 * 3600;

requireTwoCores();
const startedAt = new Date();
const loadBefore = loadAverage();
log(`plan: ${quick ? "quick" : "full"}; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);

const stack = await startStack({ concurrency: plan.envoyConcurrency });
const extraEnvoys: BenchEnvoy[] = [];
try {
  const results = await benchmark(stack);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, "results.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(path.join(resultsDir, "results.md"), toMarkdown(results));
  writeFileSync(path.join(resultsDir, "latency.png"), renderChart(results));
  console.log("\n" + scenarioTable(results) + "\n");
  for (const t of results.targets) console.log(`${t.met ? "met   " : "MISSED"}  ${t.name}: ${t.goal} — ${t.measured}`);
  log(`results in ${path.relative(process.cwd(), resultsDir)}/ (results.md, results.json, latency.png)`);
} finally {
  await Promise.allSettled(extraEnvoys.map((e) => e.stop()));
  await stack.stop();
}

async function benchmark(stack: Stack): Promise<Results> {
  const workDir = path.join(stack.runDir, "bench");
  mkdirSync(workDir, { recursive: true });
  const token = await mintJwtSvid(DEMO_AGENT_ID);

  // The sidecars under test, each pinned: pod-a serves L1 hits (one warm key), "bench-miss" the
  // L2 hits and L3 misses (keys it never saw), so neither disturbs the other's L1.
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

  const upstreamPort = await freePort();
  const upstreamAdmin = await freePort();
  const upstream = await startEnvoy({
    name: "upstream", config: upstreamConfig(upstreamPort, upstreamAdmin, bodyFile), workDir,
    port: upstreamPort, adminPort: upstreamAdmin, concurrency: 1,
  });
  extraEnvoys.push(upstream);
  pinProcess(upstream.pid, CORES.loadGenerator);
  const variant = async (name: Variant): Promise<Target> => {
    const envoy = await startVariant({
      variant: name, sidecarConfigPath: stack.envoy.configPath, workDir, bodyFile, upstreamPort, concurrency: plan.envoyConcurrency,
    });
    extraEnvoys.push(envoy);
    pinProcess(envoy.pid, CORES.envoy);
    return { url: envoy.url, adminUrl: envoy.adminUrl, pid: envoy.pid };
  };

  const expiresAt = Math.floor(Date.now() / 1000) + SYNTHETIC_LIFETIME_SECONDS;
  const pool = (prefix: string) => new L2Pool({ bridgeUrl: stack.parts.bridge.url, spiffeId: DEMO_AGENT_ID, credentialBody, expiresAt, prefix });
  const scenarios: Scenario[] = [
    ...floorScenarios(token, await variant("floor"), await variant("floor-jwt")),
    ...passThroughScenarios(await variant("pass-through-plain"), await variant("pass-through-wasm"), await variant("pass-through-skip")),
    l1HitScenario(token, l1Sidecar),
    l1HitScenario(token, await variant("sidecar-jwt-cache"), "jwt-cache"),
    l2HitScenario(token, missSidecar, pool(KEY_PREFIX.l2), restartMissSidecar),
    l3MissScenario(token, missSidecar, new KeySequence(KEY_PREFIX.miss)),
    noFilterScenario(token, await variant("no-filter")),
  ];

  const measurements = await runRounds(scenarios, workDir);

  log("profiling the sidecar on L1 hits, and the floor with jwt_authn, for comparison");
  const profileRun = (scenario: Scenario) =>
    profileDuring(scenario.target.pid, plan.profileSeconds, workDir, () =>
      measure({ scenario, kind: "throughput", round: -1, run: { connections: plan.throughputConnections, seconds: plan.profileSeconds + 1 }, workDir }));
  const l1Profile = await profileRun(scenarios.find((s) => s.id === "l1-hit")!);
  const floorJwtProfile = await profileRun(scenarios.find((s) => s.id === "floor-jwt")!);

  // The comparison Envoys are done; the growth phase gets a sidecar of its own.
  await Promise.allSettled(extraEnvoys.map((e) => e.stop()));
  const growthSidecar = await stack.addSidecar("bench-growth");
  const growthPid = findProcess(growthSidecar.configPath);
  pinProcess(growthPid, CORES.envoy);
  const growth = await measureL1Growth({
    sidecar: growthSidecar, pid: growthPid, pool: pool(KEY_PREFIX.growth), token, spiffeId: DEMO_AGENT_ID,
    credentialBody, plan: plan.growth, workDir, log,
  });

  const summaries = summarize(scenarios, measurements);
  const memory = memoryFindings(growth);
  return {
    conditions: {
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      cpuModel: cpus()[0]?.model ?? "unknown CPU",
      cpus: cpus().length,
      envoyVersion: envoyVersion(),
      pinning:
        `Every Envoy under test: --concurrency ${plan.envoyConcurrency}, all threads pinned to core ${CORES.envoy}; ` +
        `wrk (1 thread) and the pass-through's upstream Envoy pinned to core ${CORES.loadGenerator}; ` +
        "injector, OPA, moto, bridge and Valkey left to the scheduler.",
      loadBefore,
      loadAfter: loadAverage(),
      machineBusy: machineBusy(measurements),
    },
    plan,
    scenarios: summaries,
    targets: evaluateTargets(summaries, measurements, memory),
    growth,
    memory,
    profile: { l1Hit: l1Profile.outcome, floorJwt: floorJwtProfile.outcome },
    measurements: [...measurements, l1Profile.result, floorJwtProfile.result],
  };
}

/**
 * A warm-up run of every scenario, then plan.rounds rounds of one latency and one throughput run
 * each. Warm-ups and resets count as round 0, which no summary uses.
 */
async function runRounds(scenarios: Scenario[], workDir: string): Promise<Measurement[]> {
  const measurements: Measurement[] = [];
  const latencyRun = { connections: 1, seconds: plan.latencySeconds };
  const throughputRun = { connections: plan.throughputConnections, seconds: plan.throughputSeconds };
  const warmUp = async (scenario: Scenario) =>
    measurements.push(await measure({ scenario, kind: "throughput", round: 0, run: { ...throughputRun, seconds: plan.warmupSeconds }, workDir }));

  log("warming every scenario");
  for (const scenario of scenarios) await warmUp(scenario);
  for (let round = 1; round <= plan.rounds; round++) {
    log(`round ${round} of ${plan.rounds}`);
    for (const scenario of scenarios.filter((s) => s.beforeRound)) {
      await scenario.beforeRound!();
      await warmUp(scenario);
    }
    const order = round % 2 === 1 ? RUN_ORDER : [...RUN_ORDER].reverse();
    for (const scenario of order.map((id) => scenarios.find((s) => s.id === id)!)) {
      const latency = await measure({ scenario, kind: "latency", round, run: latencyRun, workDir });
      const throughput = await measure({ scenario, kind: "throughput", round, run: throughputRun, workDir });
      measurements.push(latency, throughput);
      log(`  ${scenario.title.padEnd(30)} p50 ${latency.wrk.latencyUs.p50} µs, ${Math.round(throughput.wrk.rps)} req/s`);
    }
  }
  return measurements;
}

function sidecarTarget(sidecar: EnvoySidecar): Target {
  const pid = findProcess(sidecar.configPath);
  pinProcess(pid, CORES.envoy);
  return { url: sidecar.agentUrl, adminUrl: sidecar.adminUrl, pid };
}

/** The warm key's credential, issued through the whole stack (L3), as the template of all others. */
async function firstCredential(sidecar: EnvoySidecar, token: string): Promise<string> {
  const { path: requestPath, headers } = exchangeRequest(token, WARM_REGION);
  const answer = await fetch(`${sidecar.agentUrl}${requestPath}`, { method: "POST", headers, body: exchangeBody(WARM_REGION) });
  const body = await answer.text();
  if (answer.status !== 200) throw new Error(`the first exchange answered ${answer.status}: ${body.slice(0, 300)}`);
  return body;
}

function envoyVersion(): string {
  const text = execFileSync(tools.envoy(), ["--version"], { encoding: "utf8" });
  return `Envoy ${/\/(\d+\.\d+\.\d+)\//.exec(text)?.[1] ?? "?"} (V8 wasm runtime)`;
}
