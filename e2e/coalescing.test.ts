// Coalescing through the real Envoy: a burst of concurrent misses for one cold key, spread
// over all of Envoy's worker threads, causes exactly one exchange at the Credential Injector (counted
// in the injector's own log, one line per exchange), and every request of the burst is answered with
// that exchange's credential. Then the same for ten distinct cold keys at once: one exchange per key,
// and never one key's credential in another key's answer.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import {
  SecretLedger,
  cacheCounters,
  connectionsPerWorker,
  exchange,
  expectNoSecretsInLogs,
  filterMetric,
  injectorExchanges,
  summary,
  tally,
  type HttpAnswer,
} from "./helpers.ts";

/** Envoy worker threads: the burst must be coalesced across all of them, not only within one. */
const WORKERS = 2;
const BURST = 1_000;
const KEYS = 10;
/** The filter's injector timeout (envoy/exchange-filter.json): the longest any waiter may wait. */
const EXCHANGE_TIMEOUT_MS = 5_000;
/** Opening 1,000 connections and answering them on 2 shared cores takes time of its own. */
const BURST_WITHIN_MS = EXCHANGE_TIMEOUT_MS + 10_000;

let stack: Stack;
const ledger = new SecretLedger();

beforeAll(async () => {
  stack = await startStack({ concurrency: WORKERS });
});

afterAll(async () => {
  await stack?.stop();
});

/** Fires every request at once (one connection each) and waits for all; a transport error is an answer with status 0. */
async function burst(requests: (() => Promise<HttpAnswer>)[]): Promise<{ answers: HttpAnswer[]; ms: number }> {
  const started = Date.now();
  const answers = await Promise.all(
    requests.map((send) =>
      send().catch((error: Error): HttpAnswer => ({ status: 0, headers: {}, text: error.message, json: undefined })),
    ),
  );
  return { answers, ms: Date.now() - started };
}

/** How many more connections each worker accepted than before. */
async function workerDelta(before: number[]): Promise<number[]> {
  const after = await connectionsPerWorker(stack.envoy);
  return after.map((count, worker) => count - (before[worker] ?? 0));
}

/** Every answer is a 200 (a transport failure counts as status 0). */
function expectAllServed(answers: HttpAnswer[]): void {
  const failed = answers.filter((answer) => answer.status !== 200);
  const first = failed[0] ? (failed[0].status === 0 ? `no HTTP answer: ${failed[0].text}` : summary(failed[0])) : "-";
  expect(failed.length, `answers that are not 200: ${JSON.stringify(tally(failed))}; first: ${first}`).toBe(0);
}

/** Every answer is a 200 for `spiffeId` carrying the same body; returns the tiers, in order. */
function expectOneCredential(answers: HttpAnswer[], spiffeId: string): string[] {
  expectAllServed(answers);
  const first = answers[0];
  const differing = answers.filter((answer) => answer.text !== first.text).length;
  expect(differing, "answers whose body differs from the first answer's").toBe(0);
  expect(first.json.spiffe_id).toBe(spiffeId);
  expect(answers.every((answer) => answer.headers["x-hexr-expires-at"] === String(first.json.expires_at))).toBe(true);
  ledger.credentials(first.json);
  return answers.map((answer) => String(answer.headers["x-hexr-cache"]));
}

describe("coalescing in the real Envoy", () => {
  // Ten keys first, so that a VM trap in the bigger single-key burst (nested local replies overflowing
  // the stack: docs/envoy-behaviour.md) cannot spill into it.
  it(`turns ${BURST} concurrent requests for ${KEYS} distinct cold keys into ${KEYS} exchanges, one per key`, async () => {
    // Ten identities the dev policy grants aws_s3 (any role of multi-cloud-analyst): ten keys.
    const ids = Array.from({ length: KEYS }, (_, i) => `spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/burst-${i}`);
    const tokens = await Promise.all(ids.map(async (id) => ledger.token(await mintJwtSvid(id))));
    const region = "eu-west-3";
    const workersBefore = await connectionsPerWorker(stack.envoy);

    // Interleaved: request i is for key i mod 10, so every key's requests arrive together.
    const { answers, ms } = await burst(
      Array.from({ length: BURST }, (_, i) => () => exchange(stack.envoy, { token: tokens[i % KEYS], region })),
    );
    console.info(`coalescing: ${BURST} concurrent requests for ${KEYS} cold keys in ${ms} ms: ${JSON.stringify(tally(answers))}`);

    expectAllServed(answers);
    const accessKeys = new Map<string, string>();
    for (let key = 0; key < KEYS; key++) {
      const own = answers.filter((_, i) => i % KEYS === key);
      expect(injectorExchanges(stack, { spiffeId: ids[key], region }), `exchanges for key ${key}`).toBe(1);
      const tiers = expectOneCredential(own, ids[key]);
      expect(tiers.filter((tier) => tier === "L3"), `answers for key ${key} that came from an exchange`).toHaveLength(1);
      accessKeys.set(own[0].json.credentials.AccessKeyId, ids[key]);
    }
    // Ten exchanges, ten different credentials: no key was answered with another key's result.
    expect(accessKeys.size).toBe(KEYS);
    expect(injectorExchanges(stack, { region })).toBe(KEYS);
    expect(ms).toBeLessThan(BURST_WITHIN_MS);
    for (const accepted of await workerDelta(workersBefore)) expect(accepted).toBeGreaterThan(BURST / (WORKERS * 4));
  });

  it(`turns ${BURST} concurrent requests for one cold key into 1 exchange and ${BURST} correct answers`, async () => {
    const token = ledger.token(await mintJwtSvid(DEMO_AGENT_ID));
    const region = "us-east-2";
    const workersBefore = await connectionsPerWorker(stack.envoy);
    const countersBefore = await cacheCounters(stack.envoy);
    const coalescedBefore = await filterMetric(stack.envoy, "hexr_coalesced_requests");

    const { answers, ms } = await burst(Array.from({ length: BURST }, () => () => exchange(stack.envoy, { token, region })));
    console.info(`coalescing: ${BURST} concurrent requests for one cold key in ${ms} ms: ${JSON.stringify(tally(answers))}`);

    expectAllServed(answers);
    // The count that matters: the injector (and STS behind it) saw one exchange, not a thousand.
    expect(injectorExchanges(stack, { spiffeId: DEMO_AGENT_ID, region }), "exchanges at the injector").toBe(1);
    const tiers = expectOneCredential(answers, DEMO_AGENT_ID);
    expect(tiers.filter((tier) => tier === "L3"), "answers that came from an exchange").toHaveLength(1);
    expect(tiers.every((tier) => tier === "L1" || tier === "L2" || tier === "L3")).toBe(true);
    expect(ms).toBeLessThan(BURST_WITHIN_MS);

    // The burst really was spread over every worker thread (each has its own VM).
    const perWorker = await workerDelta(workersBefore);
    expect(perWorker).toHaveLength(WORKERS);
    for (const accepted of perWorker) expect(accepted).toBeGreaterThan(BURST / (WORKERS * 4));

    // The filter's own accounting agrees: every L1 answer was an L1 hit or a coalesced waiter.
    const counters = await cacheCounters(stack.envoy);
    const coalesced = (await filterMetric(stack.envoy, "hexr_coalesced_requests")) - coalescedBefore;
    expect(counters.hits.L3 - countersBefore.hits.L3).toBe(1);
    expect(counters.hits.L1 - countersBefore.hits.L1 + coalesced).toBe(tiers.filter((tier) => tier === "L1").length);
    expect(counters.hits.L2 - countersBefore.hits.L2).toBe(tiers.filter((tier) => tier === "L2").length);
    console.info(`coalescing: connections per worker ${JSON.stringify(perWorker)}, coalesced waiters ${coalesced}`);
  });

  it("leaks no credential or token into any log", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
