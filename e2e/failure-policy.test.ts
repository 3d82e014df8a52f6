// The exchange filter's failure policy (FAIL_RELOAD, envoy/sidecar.yaml) in the real Envoy: a trap
// in the VM fails closed with the contract's JSON 503, never lets a request past the filter, and a
// fresh VM serves again after the reload backoff, with L1 (proxy shared data) intact. Envoy's own
// error replies are the contract's JSON as well.
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../support/dev-identity.ts";
import { DEMO_AGENT_ID, startStack, type Stack } from "../stack/index.ts";
import {
  SecretLedger,
  exchange,
  expectContractError,
  expectCredential,
  expectNoSecretsInLogs,
  expectSameBody,
  request,
  sleep,
  summary,
} from "./helpers.ts";

/** A path the filter traps on (docs/filter-contract.md debug_trap_path); set for this stack only. */
const TRAP_PATH = "/debug/trap";
/** reload_config.backoff.base_interval in envoy/sidecar.yaml is 1 s; jitter and a loaded machine add some. */
const RELOAD_WITHIN_MS = 10_000;

let stack: Stack;
const ledger = new SecretLedger();
let token: string;

beforeAll(async () => {
  // One worker thread, so the request after the trap meets the failed VM and not a sibling's.
  stack = await startStack({ concurrency: 1, filterOverrides: { debug_trap_path: TRAP_PATH } });
  token = ledger.token(await mintJwtSvid(DEMO_AGENT_ID));
});

afterAll(async () => {
  await stack?.stop();
});

async function reloadCounters(): Promise<{ success: number; failure: number }> {
  const stats = await stack.envoy.stats("^wasm\\.hexr_exchange\\.vm_reload");
  return { success: stats.get("wasm.hexr_exchange.vm_reload_success") ?? -1, failure: stats.get("wasm.hexr_exchange.vm_reload_failure") ?? -1 };
}

describe("a trap in the exchange filter's VM", () => {
  it("fails closed with the contract's 503, then a reloaded VM serves again with L1 intact", async () => {
    const cached = await exchange(stack.envoy, { token, region: "us-west-2" });
    ledger.credentials(expectCredential(cached, "L3", DEMO_AGENT_ID));
    expect(await reloadCounters()).toEqual({ success: 0, failure: 0 });

    const trapped = await request(`${stack.envoy.agentUrl}${TRAP_PATH}`);
    expectContractError(trapped, 503, "CredentialError");

    // Until the reload, every exchange is refused in JSON; not one gets past the filter.
    const started = Date.now();
    let answer = await exchange(stack.envoy, { token, region: "us-west-2" });
    let refused = 0;
    while (answer.status !== 200 && Date.now() - started < RELOAD_WITHIN_MS) {
      expectContractError(answer, 503, "CredentialError");
      expect(answer.json.error.message).toMatch(/wasm_fail_stream/);
      refused++;
      await sleep(100);
      answer = await exchange(stack.envoy, { token, region: "us-west-2" });
    }
    expect(refused, "the failed VM was never seen: the trap did not fail it").toBeGreaterThan(0);
    expect(answer.status, summary(answer)).toBe(200);

    // A fresh VM, and the entry cached before the trap is still in L1: shared data outlives the VM.
    expect((await reloadCounters()).success).toBeGreaterThanOrEqual(1);
    expectCredential(answer, "L1", DEMO_AGENT_ID);
    expectSameBody(answer, cached);
    ledger.credentials(expectCredential(await exchange(stack.envoy, { token, region: "eu-west-3" }), "L3", DEMO_AGENT_ID));
  });
});

describe("Envoy's own error replies", () => {
  it("are the contract's JSON too (here: a request with both Content-Length and chunked framing)", async () => {
    const port = Number(new URL(stack.envoy.agentUrl).port);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () =>
        socket.write("POST /exchange HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
      );
      let received = "";
      const complete = () => {
        const [head, body = ""] = received.split("\r\n\r\n");
        const length = /\r\ncontent-length: (\d+)/i.exec(head)?.[1];
        return length !== undefined && Buffer.byteLength(body) >= Number(length);
      };
      socket.on("data", (chunk) => {
        received += chunk;
        if (complete()) socket.destroy();
      });
      socket.on("close", () => resolve(received));
      socket.on("error", reject);
      socket.setTimeout(5_000, () => socket.destroy());
    });
    const [head, body] = reply.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(head).toMatch(/\r\ncontent-type: application\/json\r\n/i);
    expect(JSON.parse(body).error.type).toBe("BadRequest");
  });
});

describe("logs", () => {
  it("contain no credential or token", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
