// The three tiers through the real Envoy: L3 (the injector), then L1 (proxy shared data), then,
// once a restart has emptied L1, L2 (Valkey through the bridge); a second pod shares L2 but only
// ever per identity. Each tier is checked in x-hexr-cache and in the filter's Envoy metrics.
import { Redis } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueX509Svid, mintJwtSvid } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import { loadFilterConfiguration } from "../stack/render.ts";
import {
  SecretLedger,
  cacheCounters,
  delta,
  eventually,
  exchange,
  expectCredential,
  expectNoSecretsInLogs,
  expectSameBody,
  request,
  summary,
} from "./helpers.ts";

const AGENT_A = DEMO_AGENT_ID; // research-analyst/main: aws_s3 granted
const AGENT_B = "spiffe://hexr.local/agent/acme-corp/content-crew/writer"; // aws_s3 granted too

let stack: Stack;
const ledger = new SecretLedger();
let tokenA: string;
let tokenB: string;
/** Raw Valkey contents read during the run, searched for secrets at the end. */
const valkeyDump: Record<string, string> = {};

beforeAll(async () => {
  // These tests assert which tier answers; on a loaded CI machine the shipped L2 timeout (200 ms)
  // could turn a slow L2 hit into an L3 answer, so L2 gets more time here.
  const { l2 } = loadFilterConfiguration() as { l2: object };
  stack = await startStack({ filterOverrides: { l2: { ...l2, timeout_ms: 2000 } } });
  tokenA = ledger.token(await mintJwtSvid(AGENT_A));
  tokenB = ledger.token(await mintJwtSvid(AGENT_B));
});

afterAll(async () => {
  await stack?.stop();
});

/** The bridge has the entry for this key (the filter writes L2 after replying). */
async function inL2(spiffeId: string, service: string, region: string): Promise<boolean> {
  const key = encodeURIComponent(`cred:${spiffeId}:${service}:${region}`);
  // As the pod's sidecar (the bridge serves nobody without a certificate its access file names).
  const answer = await request(`${stack.parts.bridge.url}/v1/cred/${key}`, { tls: stack.l2.bridgeTls });
  return answer.status === 200;
}

/** Exchanges the injector performed (its one log line per exchange) for this identity and region. */
function injectorExchanges(spiffeId: string, region: string): number {
  return stack.parts.injector
    .logs()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { msg?: string; spiffe_id?: string; region?: string; status?: number })
    .filter((entry) => entry.msg === "exchange" && entry.spiffe_id === spiffeId && entry.region === region && entry.status === 200).length;
}

async function dumpValkey(): Promise<Record<string, string>> {
  const client = new Redis(stack.parts.valkey.port, "127.0.0.1", { ...stack.l2.valkeyAdmin, lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    const dump: Record<string, string> = {};
    for (const key of await client.keys("*")) dump[key] = (await client.getBuffer(key))?.toString("latin1") ?? "";
    return dump;
  } finally {
    client.disconnect();
  }
}

describe("cache tiers through the real Envoy", () => {
  it("answers L3, then L1, then after an Envoy restart L2, with the same credential each time", async () => {
    const pod = stack.envoy;
    const before = await cacheCounters(pod);

    const first = await exchange(pod, { token: tokenA, region: "us-west-2" });
    const issued = expectCredential(first, "L3", AGENT_A);
    ledger.credentials(issued);
    expect({ service: issued.service, provider: issued.provider, region: issued.region }).toEqual({ service: "aws_s3", provider: "aws", region: "us-west-2" });
    expect(/^[A-Z0-9]{16,}$/.test(issued.credentials.AccessKeyId), "an AWS access key id").toBe(true);
    expect(issued.expires_at).toBeGreaterThan(Date.now() / 1000 + 600);
    const afterL3 = await cacheCounters(pod);
    expect(delta(before, afterL3)).toEqual({ hits: { L1: 0, L2: 0, L3: 1 }, misses: { L1: 1, L2: 1 } });

    const second = await exchange(pod, { token: tokenA, region: "us-west-2" });
    expectCredential(second, "L1", AGENT_A);
    expectSameBody(second, first); // byte-for-byte the injector's body
    const afterL1 = await cacheCounters(pod);
    expect(delta(afterL3, afterL1)).toEqual({ hits: { L1: 1, L2: 0, L3: 0 }, misses: { L1: 0, L2: 0 } });
    expect(afterL1.invocations("aws_s3") - before.invocations("aws_s3")).toBe(2);

    // The L2 write is asynchronous; once it has landed, Valkey holds it encrypted.
    await eventually("the L3 answer is written to L2", () => inL2(AGENT_A, "aws_s3", "us-west-2"));
    Object.assign(valkeyDump, await dumpValkey());
    expect(Object.keys(valkeyDump)).toContain(`cred:${AGENT_A}:aws_s3:us-west-2`);

    await pod.restart(); // a new Envoy process: L1 is empty, its counters start at zero
    const third = await exchange(pod, { token: tokenA, region: "us-west-2" });
    expectCredential(third, "L2", AGENT_A);
    expectSameBody(third, first);
    const afterRestart = await cacheCounters(pod);
    expect(afterRestart.hits).toEqual({ L1: 0, L2: 1, L3: 0 });
    expect(afterRestart.misses).toEqual({ L1: 1, L2: 0 });

    // The L2 hit filled L1.
    const fourth = await exchange(pod, { token: tokenA, region: "us-west-2" });
    expectCredential(fourth, "L1", AGENT_A);
    expectSameBody(fourth, first);
  });

  it("gives a second pod L2 hits for the same identity, and never another identity's entry", async () => {
    const podA = stack.envoy;
    const warm = await exchange(podA, { token: tokenA, region: "ap-southeast-1" });
    const issuedA = expectCredential(warm, "L3", AGENT_A);
    ledger.credentials(issuedA);
    await eventually("pod A's entry is in L2", () => inL2(AGENT_A, "aws_s3", "ap-southeast-1"));

    const podB = await stack.addSidecar("pod-b");
    const before = await cacheCounters(podB);

    // Same identity, same service and region: pod B finds pod A's exchange in L2.
    const shared = await exchange(podB, { token: tokenA, region: "ap-southeast-1" });
    expectCredential(shared, "L2", AGENT_A);
    expectSameBody(shared, warm);

    // Another identity asking for exactly the same service and region: its own exchange (L3), its own credential.
    const other = await exchange(podB, { token: tokenB, region: "ap-southeast-1" });
    const issuedB = expectCredential(other, "L3", AGENT_B);
    ledger.credentials(issuedB);
    expect(issuedB.credentials.AccessKeyId === issuedA.credentials.AccessKeyId, "B got A's access key id").toBe(false);
    expect(issuedB.credentials.SecretAccessKey === issuedA.credentials.SecretAccessKey, "B got A's secret").toBe(false);

    // And A on pod B is now an L1 hit that still carries A's credential, not B's.
    const againA = await exchange(podB, { token: tokenA, region: "ap-southeast-1" });
    expectCredential(againA, "L1", AGENT_A);
    expectSameBody(againA, warm);

    expect(delta(before, await cacheCounters(podB))).toEqual({ hits: { L1: 1, L2: 1, L3: 1 }, misses: { L1: 2, L2: 1 } });
  });

  it("serves agents on the mTLS listener by their X.509-SVID, sharing the same cache entry", async () => {
    const pod = stack.envoy;
    const svid = await issueX509Svid(AGENT_A);
    const tls = { ...svid, ca: stack.identity.ca };

    // The injector still wants the JWT-SVID as the web-identity token for STS.
    const first = await exchange(pod, { listener: "mtls", tls, token: tokenA, region: "eu-central-1" });
    ledger.credentials(expectCredential(first, "L3", AGENT_A));

    // The certificate alone identifies the agent: the cached entry is served without a token.
    const second = await exchange(pod, { listener: "mtls", tls, region: "eu-central-1" });
    expectCredential(second, "L1", AGENT_A);
    expectSameBody(second, first);

    // The same identity over the plain listener with its JWT-SVID reaches the same L1 entry.
    const plain = await exchange(pod, { token: tokenA, region: "eu-central-1" });
    expectCredential(plain, "L1", AGENT_A);
    expectSameBody(plain, first);
  });

  it("coalesces concurrent misses for one key into a single exchange, across Envoy's worker threads", async () => {
    const pod = stack.envoy;
    const region = "us-east-2";
    const before = await cacheCounters(pod);
    const answers = await Promise.all(Array.from({ length: 16 }, () => exchange(pod, { token: tokenA, region })));

    const tiers = answers.map((answer) => {
      expect(answer.status, summary(answer)).toBe(200);
      expect(answer.json.spiffe_id).toBe(AGENT_A);
      expectSameBody(answer, answers[0]);
      return answer.headers["x-hexr-cache"];
    });
    ledger.credentials(answers[0].json);
    expect(tiers.filter((tier) => tier === "L3")).toHaveLength(1);
    expect(tiers.every((tier) => tier === "L1" || tier === "L2" || tier === "L3")).toBe(true);
    expect(delta(before, await cacheCounters(pod)).hits.L3).toBe(1);
    // What matters: the injector (and the cloud STS behind it) saw one exchange, not sixteen.
    expect(injectorExchanges(AGENT_A, region)).toBe(1);
  });

  it("leaks no credential or token into any log, and keeps L2 values encrypted in Valkey", async () => {
    const dump = Object.fromEntries(Object.entries(valkeyDump).map(([key, value]) => [`valkey ${key}`, value]));
    expect(Object.keys(dump).length).toBeGreaterThan(0);
    await expectNoSecretsInLogs(stack, ledger, dump);
  });
});
