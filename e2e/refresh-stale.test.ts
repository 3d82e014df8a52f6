// Refresh-ahead and stale-if-error through the real Envoy, with real (moto) credentials.
//
// The stack's AWS sessions last 1800 s (the injector's minimum), so the credentials stay real and the
// windows are made short with the filter's refresh_buffer_seconds instead: with a buffer of 1790 s
// an entry is servable for about 10 s after it was stored, its last 25 % (about 2.5 s) is the
// refresh-ahead window, and after those 10 s it is "past the refresh buffer but still inside the
// credential's real lifetime" for another 1790 s: the stale-if-error window.
//
// What this file cannot show: the hard stop at the credential's real expiry (the 1800th second), which
// no CI test can wait for with real STS credentials and which is not faked here. It is proven with a
// virtual clock in host-test/stale-if-error.test.ts ("never serves an entry past expires_at"), and in
// the real Envoy by the soak run (e2e/soak.ts, its expiry probe). Here, every stale answer is checked
// to be inside its credential's lifetime when it was asked for.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueX509Svid, mintJwtSvid } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import { loadFilterConfiguration } from "../stack/render.ts";
import {
  SecretLedger,
  cacheCounters,
  exchange,
  expectContractError,
  expectCredential,
  expectNoSecretsInLogs,
  expectSameBody,
  filterMetric,
  injectorExchanges,
  sleep,
  summary,
  type HttpAnswer,
} from "./helpers.ts";

/** 1800-s credentials (injector/config.dev.json), 1790 s of buffer: about 10 s of servable life per entry. */
const BUFFER_SECONDS = 1790;
/** The injector call's timeout in this stack (the shipped 5 s would make the hung-injector case slow). */
const INJECTOR_TIMEOUT_MS = 2_000;
/** How long the steady agent runs: at least two full servable lives, so at least two refreshes. */
const STEADY_MS = 25_000;
const STEADY_PERIOD_MS = 200;
const STALE_WARNING = /^110 - "stale credential: the credential injector is unavailable"$/;

const AGENT = DEMO_AGENT_ID;
const STEADY_AGENT = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/steady";

let stack: Stack;
const ledger = new SecretLedger();
let token: string;
/** Entries warmed at the start, one per stale-if-error case, so they are past their buffer by then. */
const warmed = new Map<string, HttpAnswer>();
const STALE_REGIONS = { injectorDown: "ca-central-1", injectorHung: "ap-northeast-3", motoDown: "sa-east-1", opaDown: "ap-south-1", denied: "eu-west-1" };

beforeAll(async () => {
  const { injector } = loadFilterConfiguration() as { injector: object };
  stack = await startStack({
    filterOverrides: { refresh_buffer_seconds: BUFFER_SECONDS, injector: { ...injector, timeout_ms: INJECTOR_TIMEOUT_MS } },
  });
  token = ledger.token(await mintJwtSvid(AGENT));
  for (const region of Object.values(STALE_REGIONS)) {
    const answer = region === STALE_REGIONS.denied ? await mtlsExchange(token, region) : await exchange(stack.envoy, { token, region });
    ledger.credentials(expectCredential(answer, "L3", AGENT));
    warmed.set(region, answer);
  }
});

afterAll(async () => {
  await stack?.stop();
});

/** The agent on the mTLS listener (identity from its certificate), sending `jwt` along for the injector. */
async function mtlsExchange(jwt: string, region: string): Promise<HttpAnswer> {
  const svid = await issueX509Svid(AGENT);
  return exchange(stack.envoy, { listener: "mtls", tls: { ...svid, ca: stack.identity.ca }, token: jwt, region });
}

/** Waits until the entry warmed for `region` is past its refresh buffer (not servable from L1 any more). */
async function pastBuffer(region: string): Promise<HttpAnswer> {
  const answer = warmed.get(region)!;
  const servableUntilMs = (answer.json.expires_at - BUFFER_SECONDS) * 1000;
  // +1 s: the filter compares whole seconds.
  const wait = servableUntilMs + 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  return answer;
}

/** A stale answer: the original entry byte for byte, marked, and inside the credential's real lifetime. */
function expectStale(answer: HttpAnswer, original: HttpAnswer, askedAtMs: number): void {
  expect({ status: answer.status, tier: answer.headers["x-hexr-cache"] }, summary(answer)).toEqual({ status: 200, tier: "L1-stale" });
  expect(answer.headers.warning).toMatch(STALE_WARNING);
  expectSameBody(answer, original);
  expect(answer.headers["x-hexr-expires-at"]).toBe(String(original.json.expires_at));
  // Past the buffer (that is why it is stale), never past the real expiry.
  expect(Math.floor(askedAtMs / 1000)).toBeGreaterThanOrEqual(original.json.expires_at - BUFFER_SECONDS);
  expect(Math.floor(askedAtMs / 1000)).toBeLessThan(original.json.expires_at);
}

async function timed(send: () => Promise<HttpAnswer>): Promise<{ answer: HttpAnswer; askedAtMs: number; ms: number }> {
  const askedAtMs = Date.now();
  const answer = await send();
  return { answer, askedAtMs, ms: Date.now() - askedAtMs };
}

describe("refresh-ahead with short-lived entries", () => {
  it("gives a steady agent no L3 answer after the first: one background re-exchange per servable life", async () => {
    const steadyToken = ledger.token(await mintJwtSvid(STEADY_AGENT));
    const region = "us-west-2";
    const refreshesBefore = await filterMetric(stack.envoy, "hexr_refresh_ahead_exchanges");
    const l3Before = (await cacheCounters(stack.envoy)).hits.L3;

    const seen: { answer: HttpAnswer; askedAtMs: number }[] = [];
    const started = Date.now();
    while (Date.now() - started < STEADY_MS) {
      const askedAtMs = Date.now();
      seen.push({ answer: await exchange(stack.envoy, { token: steadyToken, region }), askedAtMs });
      await sleep(STEADY_PERIOD_MS);
    }
    const ranSeconds = (Date.now() - started) / 1000;

    const tiers = seen.map(({ answer }) => `${answer.status} ${answer.headers["x-hexr-cache"] ?? "-"}`);
    const counts = tiers.reduce<Record<string, number>>((all, tier) => ({ ...all, [tier]: (all[tier] ?? 0) + 1 }), {});
    expect(tiers[0]).toBe("200 L3");
    expect(tiers.slice(1).filter((tier) => tier !== "200 L1"), `tiers after the first: ${JSON.stringify(counts)}`).toEqual([]);

    const accessKeys = new Set<string>();
    for (const { answer, askedAtMs } of seen) {
      const body = expectCredential(answer, answer === seen[0].answer ? "L3" : "L1", STEADY_AGENT);
      ledger.credentials(body);
      accessKeys.add(body.credentials.AccessKeyId);
      // Every answer was servable when it was asked for: inside expires_at - buffer.
      expect(Math.floor(askedAtMs / 1000)).toBeLessThan(body.expires_at - BUFFER_SECONDS);
    }

    // The entry lived ~10 s and the agent ran 25 s: it was re-exchanged in the background at least
    // twice, and once per servable life rather than once per hit in the refresh window (the agent
    // made ~12 requests in each window). A refresh starts no earlier than ~7 s into a life.
    const exchanges = injectorExchanges(stack, { spiffeId: STEADY_AGENT, region });
    const refreshes = (await filterMetric(stack.envoy, "hexr_refresh_ahead_exchanges")) - refreshesBefore;
    console.info(`refresh-ahead: ${seen.length} requests in ${ranSeconds.toFixed(1)} s: ${JSON.stringify(counts)}; ${exchanges} injector exchanges (${refreshes} background refreshes), ${accessKeys.size} distinct credentials served`);
    expect(exchanges).toBeGreaterThanOrEqual(3);
    expect(exchanges).toBeLessThanOrEqual(1 + Math.ceil(ranSeconds / 6));
    expect(refreshes).toBe(exchanges - 1);
    expect((await cacheCounters(stack.envoy)).hits.L3 - l3Before).toBe(1);
    // The refreshed credentials were the ones served afterwards.
    expect(accessKeys.size).toBeGreaterThanOrEqual(exchanges - 1);
  }, STEADY_MS + 30_000);
});

/** The filter answers a key with its last 5xx for this long (assembly/resolve/claims.ts), plus slack. */
const FAILURE_MEMORY_MS = 350;

describe("stale-if-error", () => {
  it("serves the entry past its buffer, marked stale, while the injector is down; a cold key gets the 503", async () => {
    const original = await pastBuffer(STALE_REGIONS.injectorDown);
    const staleBefore = await filterMetric(stack.envoy, "hexr_stale_served");
    await stack.parts.injector.stop();
    try {
      for (let i = 0; i < 3; i++) {
        const { answer, askedAtMs } = await timed(() => exchange(stack.envoy, { token, region: STALE_REGIONS.injectorDown }));
        expectStale(answer, original, askedAtMs);
      }
      // Nothing cached: no stale entry to fall back on, the contract's error.
      expectContractError(await exchange(stack.envoy, { token, region: "us-gov-west-1" }), 503, "CredentialError");
    } finally {
      await stack.parts.injector.start();
    }
    expect((await filterMetric(stack.envoy, "hexr_stale_served")) - staleBefore).toBe(3);

    // Back up: once the filter's short memory of the failure has passed (it spares a failing
    // injector the full request rate), the next request is a fresh exchange with a new credential.
    await new Promise((resolve) => setTimeout(resolve, FAILURE_MEMORY_MS));
    const fresh = await exchange(stack.envoy, { token, region: STALE_REGIONS.injectorDown });
    const body = expectCredential(fresh, "L3", AGENT);
    ledger.credentials(body);
    expect(body.credentials.AccessKeyId === original.json.credentials.AccessKeyId, "the stale credential again").toBe(false);
    expect(body.expires_at).toBeGreaterThan(original.json.expires_at);
    expectSameBody(expectL1(await exchange(stack.envoy, { token, region: STALE_REGIONS.injectorDown })), fresh);
  });

  it("serves stale when the injector hangs (no answer), once Envoy gives up on the call", async () => {
    const original = await pastBuffer(STALE_REGIONS.injectorHung);
    stack.parts.injector.pause();
    try {
      const { answer, askedAtMs, ms } = await timed(() => exchange(stack.envoy, { token, region: STALE_REGIONS.injectorHung }));
      expectStale(answer, original, askedAtMs);
      // It did wait for the injector: Envoy gives up at the cluster's connect timeout (1 s, the TLS
      // handshake with a stopped process never completes) or at the call's timeout, whichever applies.
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(INJECTOR_TIMEOUT_MS + 3_000);
    } finally {
      stack.parts.injector.resume();
    }
  });

  it.each([
    { down: "moto (STS)", part: () => stack.parts.moto, region: STALE_REGIONS.motoDown },
    { down: "OPA", part: () => stack.parts.opa, region: STALE_REGIONS.opaDown },
  ])("serves stale when the injector answers 5xx because $down is down", async ({ part, region }) => {
    const original = await pastBuffer(region);
    await part().stop();
    try {
      const { answer, askedAtMs } = await timed(() => exchange(stack.envoy, { token, region }));
      expectStale(answer, original, askedAtMs);
      // The same trouble for a cold key is the injector's 5xx, passed on in the contract's form.
      const cold = await exchange(stack.envoy, { token, region: "us-gov-east-1" });
      expect(cold.status, summary(cold)).toBeGreaterThanOrEqual(500);
      expectContractError(cold, cold.status, "CredentialError");
    } finally {
      await part().start();
    }
  });

  it("never masks a 4xx: an injector refusal is answered as such though a stale entry exists", async () => {
    const original = await pastBuffer(STALE_REGIONS.denied);
    // The agent's own certificate (its identity for the filter) with another agent's valid JWT:
    // the injector refuses the exchange (401). The stale entry must not be served instead.
    const otherToken = ledger.token(await mintJwtSvid("spiffe://hexr.local/agent/acme-corp/content-crew/writer"));
    const refused = await mtlsExchange(otherToken, STALE_REGIONS.denied);
    expectContractError(refused, 401, "AuthenticationError");
    // The agent's own JWT: a fresh exchange, not the stale entry.
    const fresh = await mtlsExchange(token, STALE_REGIONS.denied);
    const body = expectCredential(fresh, "L3", AGENT);
    ledger.credentials(body);
    expect(body.credentials.AccessKeyId === original.json.credentials.AccessKeyId, "the stale credential").toBe(false);
  });
});

describe("logs", () => {
  it("contain no credential or token", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});

function expectL1(answer: HttpAnswer): HttpAnswer {
  expect({ status: answer.status, tier: answer.headers["x-hexr-cache"] }, summary(answer)).toEqual({ status: 200, tier: "L1" });
  return answer;
}
