// Fault injection under load, through the real Envoy: while agents keep asking for their warm keys
// (and one agent for a new, cold key each time), Valkey, the bridge, the injector, OPA and moto are
// each killed (SIGKILL) and started again on the same port. For every fault the answers are counted
// by status and tier, and judged:
//   - no request for a warm key fails, whatever is down;
//   - no credential reaches another identity, none is served past its buffer (or, stale, past its
//     real expiry), every error is the contract's JSON;
//   - with L2 down (Valkey, bridge) even cold keys are served; with L3 down (injector, OPA, moto)
//     cold keys get the contract's 5xx, and are served again once the part is back.
// Entries live ~10 s here (refresh_buffer_seconds 1790 with 1800-s credentials), so refresh-ahead runs
// all along, and the injector stays down longer than an entry's servable life: every warm key must
// then be carried by stale-if-error, not by luck.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { startStack, type Part, type Stack } from "../stack/index.ts";
import { SecretLedger, eventually, exchange, expectCredential, expectNoSecretsInLogs, injectorExchangeLines, sleep } from "./helpers.ts";
import { AgentLoad, countByTier, sharedCredentials, violations, type LoadAgent, type LoadAnswer } from "./load.ts";

/** 1800-s credentials (injector/config.dev.json), 1790 s of buffer: about 10 s of servable life per entry. */
const BUFFER_SECONDS = 1790;
const WARM_AGENTS = 6;
const WARM_PERIOD_MS = 50;
const COLD_PERIOD_MS = 150;
/** How long an L2 part or OPA/moto stays dead; the injector longer than an entry's servable life (~10 s). */
const DOWN_MS = 3_000;
const INJECTOR_DOWN_MS = 11_500;
const RECOVERY_WITHIN_MS = 20_000;
const SETTLE_MS = 1_000;
/** The whole load is bounded whatever happens to the test. */
const LOAD_LIMIT_MS = 150_000;

interface Fault {
  name: "valkey" | "bridge" | "injector" | "opa" | "moto";
  /** Behind L3: cold keys cannot be served while it is down. */
  l3: boolean;
  downMs: number;
}

const FAULTS: Fault[] = [
  { name: "valkey", l3: false, downMs: DOWN_MS },
  { name: "bridge", l3: false, downMs: DOWN_MS },
  { name: "injector", l3: true, downMs: INJECTOR_DOWN_MS },
  { name: "opa", l3: true, downMs: DOWN_MS },
  { name: "moto", l3: true, downMs: DOWN_MS },
];

interface Phase {
  label: string;
  fault?: Fault["name"];
  stage: "baseline" | "down" | "recovering" | "up";
  fromMs: number;
  toMs: number;
}

let stack: Stack;
const ledger = new SecretLedger();
let answers: LoadAnswer[] = [];
const phases: Phase[] = [];

beforeAll(async () => {
  // The load's cold agent names a new region (cold-N) on every request: the region allow-list is
  // lifted for it, as a load test's sidecar may (regions "any"), and the key caps with it.
  stack = await startStack({
    filterOverrides: { refresh_buffer_seconds: BUFFER_SECONDS, regions: { aws: "any" }, max_keys_per_identity: 100_000 },
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

function inPhase(phase: Phase, kind?: LoadAnswer["kind"]): LoadAnswer[] {
  return answers.filter((a) => a.sentAtMs >= phase.fromMs && a.sentAtMs < phase.toMs && (kind === undefined || a.kind === kind));
}

function phase(fault: Fault["name"], stage: Phase["stage"]): Phase {
  const found = phases.find((p) => p.fault === fault && p.stage === stage);
  if (!found) throw new Error(`no ${stage} phase for ${fault}`);
  return found;
}

describe("faults under load", () => {
  it("kills and restarts Valkey, the bridge, the injector, OPA and moto while agents keep asking", async () => {
    const warm: LoadAgent[] = [];
    for (let i = 0; i < WARM_AGENTS; i++) {
      const spiffeId = `spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/load-${i}`;
      warm.push({ spiffeId, token: ledger.token(await mintJwtSvid(spiffeId)), region: "us-east-1" });
    }
    const coldId = "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/cold";
    const cold = { spiffeId: coldId, token: ledger.token(await mintJwtSvid(coldId)) };
    // Warm keys are warm before the load starts.
    for (const agent of warm) ledger.credentials(expectCredential(await exchange(stack.envoy, { token: agent.token, region: agent.region }), "L3", agent.spiffeId));

    const load = new AgentLoad({
      sidecar: stack.envoy, warm, cold, warmPeriodMs: WARM_PERIOD_MS, coldPeriodMs: COLD_PERIOD_MS, ledger, maxDurationMs: LOAD_LIMIT_MS,
    });
    const mark = (label: string, stage: Phase["stage"], fault?: Fault["name"]) => {
      const now = Date.now();
      const open = phases.at(-1);
      if (open) open.toMs = now;
      phases.push({ label, stage, fault, fromMs: now, toMs: Number.MAX_SAFE_INTEGER });
    };
    const started = Date.now();
    load.start();
    try {
      mark("baseline", "baseline");
      await sleep(SETTLE_MS);
      for (const fault of FAULTS) {
        const part: Part = stack.parts[fault.name];
        mark(`${fault.name} down`, "down", fault.name);
        await part.stop("SIGKILL");
        await sleep(fault.downMs);
        await part.start();
        const upAt = Date.now();
        mark(`${fault.name} recovering`, "recovering", fault.name);
        // Back when a cold key, asked after the restart, is served again.
        await eventually(
          `a cold key is served again after ${fault.name} restarted`,
          async () => load.answers.some((a) => a.kind === "cold" && a.sentAtMs >= upAt && a.status === 200),
          RECOVERY_WITHIN_MS,
        );
        mark(`${fault.name} up`, "up", fault.name);
        await sleep(SETTLE_MS);
      }
    } finally {
      answers = await load.stop();
      const last = phases.at(-1);
      if (last) last.toMs = Date.now();
    }

    // The report: every phase, warm and cold answers by status and tier.
    const lines = phases.map((p) => {
      const seconds = ((p.toMs - p.fromMs) / 1000).toFixed(1);
      return `  ${p.label.padEnd(20)} ${seconds.padStart(5)} s  warm ${JSON.stringify(countByTier(inPhase(p, "warm")))}  cold ${JSON.stringify(countByTier(inPhase(p, "cold")))}`;
    });
    const outcomes: Record<string, number> = {};
    for (const line of injectorExchangeLines(stack)) {
      const key = `${line.status} ${line.outcome ?? "-"}${line.error ? ` (${line.error})` : ""}`;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    console.info(`faults under load: ${answers.length} answers in ${((Date.now() - started) / 1000).toFixed(1)} s\n${lines.join("\n")}\n  injector exchanges by outcome: ${JSON.stringify(outcomes)}`);

    // Whatever was down: nothing served to the wrong identity or past its time, only contract errors.
    expect(answers.flatMap((a) => violations(a, BUFFER_SECONDS))).toEqual([]);
    expect(sharedCredentials(answers)).toEqual([]);

    // No request for a warm key failed, in any phase.
    const warmFailures = answers.filter((a) => a.kind === "warm" && a.status !== 200);
    expect(warmFailures.map((a) => `${a.status} ${a.error}`), "failed warm requests").toEqual([]);

    for (const fault of FAULTS) {
      const down = phase(fault.name, "down");
      const downWarm = inPhase(down, "warm");
      const downCold = inPhase(down, "cold");
      // The load really ran through the fault.
      expect(downWarm.length, `warm requests while ${fault.name} was down`).toBeGreaterThanOrEqual(20);
      expect(downCold.length, `cold requests while ${fault.name} was down`).toBeGreaterThanOrEqual(5);
      const coldFailed = downCold.filter((a) => a.status !== 200);
      if (fault.l3) {
        // The fault bit: a cold key cannot be exchanged; the agent gets the contract's 5xx.
        expect(coldFailed.length, `cold requests refused while ${fault.name} was down`).toBeGreaterThan(0);
        for (const a of coldFailed) {
          expect([502, 503, 504], `${a.status} ${a.error}`).toContain(a.status);
          expect(a.error).toMatch(/^CredentialError: /);
        }
      } else {
        // L2 trouble never fails a request that L3 can serve.
        expect(countByTier(coldFailed), `cold requests refused while ${fault.name} was down`).toEqual({});
      }
      // Once it is back, cold keys are served again.
      // (Asked and answered inside the phase: one still in flight when the next part is killed may fail by that.)
      const up = phase(fault.name, "up");
      const afterwards = inPhase(up, "cold").filter((a) => a.sentAtMs + a.ms < up.toMs && a.status !== 200);
      expect(afterwards.map((a) => `${a.status} ${a.error}`), `cold failures after ${fault.name} came back`).toEqual([]);
    }

    // The injector stayed down longer than an entry's servable life: every warm agent was carried
    // through by stale-if-error, marked as such, and then refreshed back to normal answers.
    const injectorDown = inPhase(phase("injector", "down"), "warm");
    for (const agent of warm) {
      const own = injectorDown.filter((a) => a.agent === agent.spiffeId);
      expect(own.some((a) => a.tier === "L1-stale"), `${agent.spiffeId} was served stale while the injector was down`).toBe(true);
    }
    // A second after it restarted, nothing is stale any more (the filter remembers a 5xx for 250 ms).
    const restarted = phase("injector", "recovering");
    const injectorUp = inPhase({ ...restarted, fromMs: restarted.fromMs + 1000, toMs: phase("injector", "up").toMs }, "warm");
    expect(injectorUp.length).toBeGreaterThan(0);
    expect(injectorUp.filter((a) => a.tier === "L1-stale"), "stale answers a second after the injector came back").toEqual([]);
  }, LOAD_LIMIT_MS + 30_000);

  it("leaks no credential or token into any log", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
