// npm run soak [-- --minutes 35] [--report FILE]
//
// Not part of `npm test`: 35 minutes (by default) of mixed load against the whole local stack with
// two Envoy sidecars sharing L2, while the parts behind them are killed and restarted one after the
// other. Every answer is judged as in e2e/faults.test.ts (no warm request fails, no credential for a
// wrong identity or past its time, only the contract's errors); on top of that it runs coalescing
// bursts, revocations, and — when the run is long enough (≥ 31 minutes) — the expiry probe: one
// credential is left alone until its real expiry (1800 s) and asked for with the injector down just
// before and just after it, which shows the hard stop of stale-if-error in the real Envoy.
// Memory (RSS) of each Envoy and each service is reported at the start and at the end.
// Exit code 0 when every check held, 1 otherwise.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { startStack, type EnvoySidecar, type Part, type Stack } from "../stack/index.ts";
import { SecretLedger, exchange, injectorExchangeLines, injectorExchanges, request, sleep, type HttpAnswer } from "./helpers.ts";
import { AgentLoad, CredentialOwners, violations, type LoadAgent, type LoadAnswer } from "./load.ts";

const { values: args } = parseArgs({
  options: { minutes: { type: "string", default: "35" }, report: { type: "string" } },
});
const MINUTES = Number(args.minutes);
if (!Number.isFinite(MINUTES) || MINUTES <= 0 || MINUTES > 240) throw new Error("--minutes must be a number from 0 to 240");
const RUN_MS = MINUTES * 60_000;

const BUFFER_SECONDS = 1790; // ~10 s of servable life per entry: refresh-ahead all the time
const CREDENTIAL_SECONDS = 1800; // injector/config.dev.json aws.duration_seconds
const ADMIN = "spiffe://hexr.local/agent/acme-corp/platform-admin/soak";
const WARM_PER_POD = 4;
const WARM_PERIOD_MS = 100;
const COLD_PERIOD_MS = 500;
const BURST = 200;
const SETTLE_MS = 20_000;
const RECOVERY_WITHIN_MS = 30_000;
const FAULTS: { name: "valkey" | "bridge" | "injector" | "opa" | "moto"; l3: boolean; downMs: number }[] = [
  { name: "valkey", l3: false, downMs: 5_000 },
  { name: "bridge", l3: false, downMs: 5_000 },
  { name: "injector", l3: true, downMs: 12_000 },
  { name: "opa", l3: true, downMs: 5_000 },
  { name: "moto", l3: true, downMs: 5_000 },
];

interface Phase {
  label: string;
  /** Behind L3 and down: cold keys may fail. */
  l3Down: boolean;
  fromMs: number;
  toMs: number;
}

const log = (line: string) => process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---- the books ----

const phases: Phase[] = [];
const counts = new Map<string, Record<string, number>>(); // "phase kind" → "status tier" → n
const problems: string[] = [];
const owners = new CredentialOwners();
let answered = 0;
let warmFailures = 0;
let unexpectedColdFailures = 0;

function mark(label: string, l3Down = false): void {
  const now = Date.now();
  const open = phases.at(-1);
  if (open) open.toMs = now;
  phases.push({ label, l3Down, fromMs: now, toMs: Number.MAX_SAFE_INTEGER });
}

function phaseAt(ms: number): Phase | undefined {
  for (let i = phases.length - 1; i >= 0; i--) if (phases[i].fromMs <= ms) return phases[i];
  return undefined;
}

function problem(text: string): void {
  if (problems.length < 200) problems.push(text);
  if (problems.length <= 20) log(`PROBLEM ${text}`);
}

/** Access keys each agent was served, and those revoked (no longer servable 5 s after their revocation). */
const keysSeen = new Map<string, Set<string>>();
const revokedKeys = new Map<string, { keys: Set<string>; fromMs: number }[]>();
const REVOKED_WITHIN_MS = 5_000;

function noteRevocation(agent: string, atMs: number): void {
  const keys = new Set(keysSeen.get(agent) ?? []);
  revokedKeys.set(agent, [...(revokedKeys.get(agent) ?? []), { keys, fromMs: atMs + REVOKED_WITHIN_MS }]);
}

function record(answer: LoadAnswer): void {
  answered++;
  if (answer.accessKeyId) {
    const seen = keysSeen.get(answer.agent) ?? new Set<string>();
    seen.add(answer.accessKeyId);
    keysSeen.set(answer.agent, seen);
    for (const revoked of revokedKeys.get(answer.agent) ?? []) {
      if (answer.sentAtMs >= revoked.fromMs && revoked.keys.has(answer.accessKeyId)) {
        problem(`${answer.agent} was served a revoked credential ${answer.sentAtMs - revoked.fromMs + REVOKED_WITHIN_MS} ms after its revocation (${answer.tier})`);
      }
    }
  }
  const phase = phaseAt(answer.sentAtMs);
  const group = phase?.label.replace(/ #\d+$/, "") ?? "start";
  const key = `${group} ${answer.kind}`;
  const tiers = counts.get(key) ?? {};
  const tier = `${answer.status} ${answer.tier}`;
  tiers[tier] = (tiers[tier] ?? 0) + 1;
  counts.set(key, tiers);
  for (const found of violations(answer, BUFFER_SECONDS)) problem(found);
  const shared = owners.add(answer);
  if (shared) problem(shared);
  if (answer.status === 200) return;
  if (answer.kind === "warm") {
    warmFailures++;
    problem(`warm request failed: ${answer.agent} ${answer.status} ${answer.error} (${group})`);
    return;
  }
  // A cold key may fail only while a part behind L3 is down (asked or answered during that time).
  const endPhase = phaseAt(answer.sentAtMs + answer.ms);
  if (!phase?.l3Down && !endPhase?.l3Down) {
    unexpectedColdFailures++;
    problem(`cold request failed with nothing down: ${answer.status} ${answer.error} (${group})`);
  }
}

// ---- memory ----

function rssKiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function envoyAllocated(sidecar: EnvoySidecar): Promise<number | undefined> {
  try {
    const answer = await sidecar.admin("/memory");
    return Number((JSON.parse(answer.text) as { allocated?: string }).allocated);
  } catch {
    return undefined;
  }
}

async function memory(stack: Stack): Promise<Record<string, string>> {
  const mib = (kib: number | undefined) => (kib === undefined ? "?" : `${(kib / 1024).toFixed(1)} MiB`);
  const readings: Record<string, string> = {};
  for (const sidecar of stack.sidecars) {
    const allocated = await envoyAllocated(sidecar);
    readings[`envoy ${sidecar.name}`] = `RSS ${mib(rssKiB(sidecar.pid))}, heap allocated ${allocated === undefined ? "?" : `${(allocated / 1048576).toFixed(1)} MiB`}`;
  }
  for (const part of Object.values(stack.parts) as Part[]) readings[part.name] = `RSS ${mib(rssKiB(part.pid))} (pid ${part.pid})`;
  return readings;
}

// ---- the run ----

async function revoke(sidecar: EnvoySidecar, adminToken: string, spiffeId: string): Promise<HttpAnswer> {
  return request(`${sidecar.agentUrl}/revoke`, {
    method: "POST",
    headers: [["content-type", "application/json"], ["authorization", `Bearer ${adminToken}`]],
    body: JSON.stringify({ spiffe_id: spiffeId }),
  });
}

async function main(): Promise<number> {
  const ledger = new SecretLedger();
  log(`starting the stack for a ${MINUTES}-minute soak`);
  const stack = await startStack({
    // Cold keys come from made-up regions (recover-N, burst-N): the allow-list and the key caps are lifted.
    filterOverrides: {
      refresh_buffer_seconds: BUFFER_SECONDS,
      regions: { aws: "any" },
      max_keys_per_identity: 1_000_000,
      revocation: { path: "/revoke", admin_spiffe_ids: [ADMIN], poll_interval_ms: 1000 },
    },
  });
  const podB = await stack.addSidecar("pod-b");
  const pods = [stack.envoy, podB];
  const started = Date.now();
  const loads: AgentLoad[] = [];
  const summary: Record<string, unknown> = { minutes: MINUTES };
  try {
    const agents: LoadAgent[][] = [[], []];
    for (let pod = 0; pod < 2; pod++) {
      for (let i = 0; i < WARM_PER_POD; i++) {
        const spiffeId = `spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/soak-${pod}-${i}`;
        agents[pod].push({ spiffeId, token: ledger.token(await mintJwtSvid(spiffeId, { ttlSeconds: 4 * 3600 })), region: "us-east-1" });
      }
    }
    const adminToken = ledger.token(await mintJwtSvid(ADMIN, { ttlSeconds: 4 * 3600 }));
    const coldId = "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/soak-cold";
    const coldToken = ledger.token(await mintJwtSvid(coldId, { ttlSeconds: 4 * 3600 }));
    const probeId = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/expiry-probe";
    const probeToken = ledger.token(await mintJwtSvid(probeId, { ttlSeconds: 4 * 3600 }));

    for (let pod = 0; pod < 2; pod++) {
      for (const agent of agents[pod]) {
        const answer = await exchange(pods[pod], { token: agent.token, region: agent.region });
        if (answer.status !== 200) throw new Error(`warming ${agent.spiffeId}: ${answer.status}`);
        ledger.credentials(answer.json);
      }
    }
    // The expiry probe's credential: asked for once now, then left alone until its real expiry.
    const probeWarm = await exchange(stack.envoy, { token: probeToken, region: "us-west-2" });
    if (probeWarm.status !== 200) throw new Error(`warming the expiry probe: ${probeWarm.status}`);
    ledger.credentials(probeWarm.json);
    const probeExpiresAt: number = probeWarm.json.expires_at;
    const probeDue = RUN_MS >= (CREDENTIAL_SECONDS + 60) * 1000;

    summary.memoryAtStart = await memory(stack);
    log(`memory at start: ${JSON.stringify(summary.memoryAtStart)}`);

    mark("baseline");
    for (let pod = 0; pod < 2; pod++) {
      const load = new AgentLoad({
        sidecar: pods[pod],
        warm: agents[pod],
        cold: pod === 0 ? { spiffeId: coldId, token: coldToken } : undefined,
        warmPeriodMs: WARM_PERIOD_MS,
        coldPeriodMs: COLD_PERIOD_MS,
        ledger,
        maxDurationMs: RUN_MS + 120_000,
        onAnswer: record,
      });
      load.start();
      loads.push(load);
    }
    await sleep(Math.min(SETTLE_MS, RUN_MS / 10));

    let cycle = 0;
    let bursts = 0;
    let burstsOverOne = 0;
    let revocations = 0;
    const l2Recovery: number[] = [];
    let probe: Record<string, unknown> = { ran: false, reason: probeDue ? "pending" : `the run is shorter than ${CREDENTIAL_SECONDS + 60} s` };
    const deadline = started + RUN_MS;
    while (Date.now() < deadline) {
      // The expiry probe, when its credential's real expiry is 20 s away.
      if (probeDue && probe.ran === false && Date.now() >= (probeExpiresAt - 20) * 1000) {
        mark("expiry probe (injector down)", true);
        await stack.parts.injector.stop("SIGKILL");
        const seen: { askedAt: number; status: number; tier: string }[] = [];
        while (Date.now() < (probeExpiresAt + 5) * 1000) {
          const askedAtMs = Date.now();
          const answer = await exchange(stack.envoy, { token: probeToken, region: "us-west-2" });
          if (answer.status === 200) ledger.credentials(answer.json);
          seen.push({ askedAt: Math.floor(askedAtMs / 1000), status: answer.status, tier: String(answer.headers["x-hexr-cache"] ?? "-") });
          await sleep(1000);
        }
        await stack.parts.injector.start();
        mark(`recovering after the expiry probe`);
        const before = seen.filter((s) => s.askedAt < probeExpiresAt - 1);
        const after = seen.filter((s) => s.askedAt >= probeExpiresAt);
        const staleBefore = before.filter((s) => s.status === 200 && s.tier === "L1-stale").length;
        const servedAfter = after.filter((s) => s.status === 200).length;
        probe = { ran: true, expiresAt: probeExpiresAt, askedBefore: before.length, staleBefore, askedAfter: after.length, servedAfter, answers: seen.map((s) => `${s.askedAt - probeExpiresAt}s:${s.status} ${s.tier}`) };
        if (staleBefore !== before.length || before.length === 0) problem(`expiry probe: before expiry ${staleBefore} of ${before.length} answers were L1-stale`);
        if (servedAfter !== 0 || after.length === 0) problem(`expiry probe: ${servedAfter} of ${after.length} requests at or after the real expiry were served`);
        log(`expiry probe: ${JSON.stringify(probe)}`);
        await sleep(5_000);
        continue;
      }

      const fault = FAULTS[cycle % FAULTS.length];
      cycle++;
      // Never let a fault run into the expiry probe's window.
      if (probeDue && probe.ran === false && Date.now() + fault.downMs + RECOVERY_WITHIN_MS + 5_000 >= (probeExpiresAt - 20) * 1000) {
        await sleep(1_000);
        continue;
      }
      const part: Part = stack.parts[fault.name];
      mark(`${fault.name} down #${cycle}`, fault.l3);
      await part.stop("SIGKILL");
      await sleep(fault.downMs);
      await part.start();
      mark(`${fault.name} recovering #${cycle}`, fault.l3);
      const upAt = Date.now();
      // Recovered when a new key can be exchanged again.
      let recovered = false;
      while (!recovered && Date.now() - upAt < RECOVERY_WITHIN_MS) {
        const answer = await exchange(stack.envoy, { token: coldToken, region: `recover-${cycle}` });
        if (answer.status === 200) ledger.credentials(answer.json);
        recovered = answer.status === 200;
        if (!recovered) await sleep(250);
      }
      if (!recovered) problem(`${fault.name} did not recover within ${RECOVERY_WITHIN_MS} ms`);
      if (!fault.l3) {
        // L2 is back when the bridge reaches Valkey again (its client reconnects with a backoff).
        let healthy = false;
        while (!healthy && Date.now() - upAt < RECOVERY_WITHIN_MS) {
          healthy = (await request(`${stack.parts.bridge.url}/healthz`, { tls: { ca: stack.identity.ca } }).catch(() => ({ status: 0 }))).status === 200;
          if (!healthy) await sleep(100);
        }
        if (healthy) l2Recovery.push(Date.now() - upAt);
        else problem(`L2 was not healthy within ${RECOVERY_WITHIN_MS} ms after ${fault.name} restarted`);
      }
      mark(`up #${cycle}`);

      // With everything up: a coalescing burst for a new key on pod A, and now and then a revocation.
      const region = `burst-${cycle}`;
      const burst = await Promise.all(
        Array.from({ length: BURST }, () => exchange(stack.envoy, { token: coldToken, region }).catch((error: Error) => ({ status: 0, text: error.message }) as HttpAnswer)),
      );
      bursts++;
      const burstFailed = burst.filter((a) => a.status !== 200).length;
      if (burstFailed > 0) problem(`burst ${region}: ${burstFailed} of ${BURST} not served`);
      const exchanges = injectorExchanges(stack, { spiffeId: coldId, region });
      if (exchanges !== 1) {
        burstsOverOne++;
        problem(`burst ${region}: ${exchanges} exchanges at the injector`);
      }
      for (const answer of burst) if (answer.status === 200) ledger.credentials(answer.json);
      if (cycle % 3 === 0) {
        const target = agents[cycle % 2][cycle % WARM_PER_POD];
        const revokedAtMs = Date.now();
        const answer = await revoke(pods[(cycle + 1) % 2], adminToken, target.spiffeId);
        revocations++;
        if (answer.status === 200) noteRevocation(target.spiffeId, revokedAtMs);
        if (answer.status !== 200) problem(`revocation of ${target.spiffeId}: ${answer.status}`);
      }
      log(`cycle ${cycle} (${fault.name}) done; ${answered} answers so far, ${problems.length} problems`);
      await sleep(Math.min(SETTLE_MS, Math.max(0, deadline - Date.now())));
    }
    mark("end");

    for (const load of loads) await load.stop();
    loads.length = 0;
    summary.memoryAtEnd = await memory(stack);
    log(`memory at end: ${JSON.stringify(summary.memoryAtEnd)}`);
    const outcomes: Record<string, number> = {};
    for (const line of injectorExchangeLines(stack)) {
      const key = `${line.status} ${line.outcome ?? "-"}`;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    const stats = Object.fromEntries(await stack.envoy.stats("^wasmcustom\\.hexr_(coalesced|refresh|stale|l1_evictions|cache_hits)"));
    Object.assign(summary, {
      ranSeconds: Math.round((Date.now() - started) / 1000),
      answers: answered,
      cycles: cycle,
      warmFailures,
      unexpectedColdFailures,
      bursts,
      burstsWithMoreThanOneExchange: burstsOverOne,
      revocations,
      l2HealthyAfterRestartMs: l2Recovery.length ? { min: Math.min(...l2Recovery), max: Math.max(...l2Recovery) } : null,
      expiryProbe: probe,
      injectorExchangesByOutcome: outcomes,
      podAFilterMetrics: stats,
      answersByPhase: Object.fromEntries(counts),
      problems,
    });
  } finally {
    for (const load of loads) await load.stop();
    for (const sidecar of stack.sidecars) await sidecar.stop();
    const leaks = ledger.leaksByWord(stack.logs());
    if (leaks.length > 0) problem(`secrets in logs: ${leaks.join("; ")}`);
    summary.secretsInLogs = leaks.length;
    await stack.stop();
  }
  const text = JSON.stringify(summary, null, 2);
  process.stdout.write(`${text}\n`);
  if (args.report) writeFileSync(args.report, `${text}\n`);
  const ok = problems.length === 0;
  log(ok ? "soak passed" : `soak FAILED: ${problems.length} problems`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    log(`soak aborted: ${error.message}`);
    process.exit(2);
  },
);
