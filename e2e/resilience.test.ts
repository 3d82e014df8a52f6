// Trouble behind the sidecar: with the bridge or Valkey down every request is still answered
// (from L1, or from L3); with the injector down misses get the contract's 503 while L1 hits keep
// being served. Parts are stopped and started again on the same ports, in this one stack.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import { SecretLedger, cacheCounters, delta, exchange, expectContractError, expectCredential, expectNoSecretsInLogs } from "./helpers.ts";

const AGENT = DEMO_AGENT_ID;
/** Far above a loopback exchange, far below Envoy's and the filter's own timeouts. */
const PROMPT_MS = 2_000;

let stack: Stack;
const ledger = new SecretLedger();
let token: string;

beforeAll(async () => {
  stack = await startStack();
  token = ledger.token(await mintJwtSvid(AGENT));
});

afterAll(async () => {
  await stack?.stop();
});

/** One exchange, timed. */
async function timedExchange(region: string) {
  const started = Date.now();
  const answer = await exchange(stack.envoy, { token, region });
  return { answer, ms: Date.now() - started };
}

async function expectServed(region: string, tier: "L1" | "L2" | "L3"): Promise<void> {
  const { answer, ms } = await timedExchange(region);
  ledger.credentials(expectCredential(answer, tier, AGENT));
  expect(ms).toBeLessThan(PROMPT_MS);
}

describe.each([
  { down: "the bridge", part: () => stack.parts.bridge, regions: ["us-east-2", "ca-central-1"] },
  { down: "Valkey", part: () => stack.parts.valkey, regions: ["eu-west-2", "eu-north-1"] },
])("with $down down", ({ part, regions: [warm, cold] }) => {
  it("serves L1 hits, and misses from L3, promptly", async () => {
    await expectServed(warm, "L3"); // now in L1
    await part().stop();
    try {
      const before = await cacheCounters(stack.envoy);
      await expectServed(warm, "L1");
      await expectServed(cold, "L3");
      await expectServed(cold, "L1");
      // The failed L2 lookup counts as an L2 miss, never as an error the agent sees.
      expect(delta(before, await cacheCounters(stack.envoy))).toEqual({ hits: { L1: 2, L2: 0, L3: 1 }, misses: { L1: 1, L2: 1 } });

      // Even with L1 emptied by a restart, every request is answered (from L3).
      await stack.envoy.restart();
      await expectServed(warm, "L3");
      await expectServed(warm, "L1");
    } finally {
      await part().start();
    }
  });
});

describe("with the bridge hung (stopped with SIGSTOP: connections open, no answers)", () => {
  it("gives up on L2 after the filter's L2 timeout and answers from L3", async () => {
    await expectServed("me-south-1", "L3");
    stack.parts.bridge.pause();
    try {
      const before = await cacheCounters(stack.envoy);
      await expectServed("me-south-1", "L1");
      await expectServed("af-south-1", "L3");
      expect(delta(before, await cacheCounters(stack.envoy))).toEqual({ hits: { L1: 1, L2: 0, L3: 1 }, misses: { L1: 1, L2: 1 } });
    } finally {
      stack.parts.bridge.resume();
    }
  });
});

/** How long the filter answers a key with its last 5xx instead of calling again (assembly/resolve/claims.ts). */
const FAILURE_MEMORY_MS = 350;

describe("with the injector down", () => {
  it("answers misses with the contract's 503 while L1 hits keep being served", async () => {
    await expectServed("us-west-1", "L3"); // now in L1
    await stack.parts.injector.stop();
    try {
      for (let i = 0; i < 3; i++) {
        await expectServed("us-west-1", "L1");
        const { answer, ms } = await timedExchange("eu-south-1");
        expectContractError(answer, 503, "CredentialError");
        expect(ms).toBeLessThan(PROMPT_MS);
      }
    } finally {
      await stack.parts.injector.start();
    }
    // Back up: the miss is served again, once the filter's short memory of the failure
    // (which spares a failing injector the full request rate) has passed.
    await new Promise((resolve) => setTimeout(resolve, FAILURE_MEMORY_MS));
    await expectServed("eu-south-1", "L3");
  });
});

describe("logs", () => {
  it("contain no credential or token", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
