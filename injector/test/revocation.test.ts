// The injector refuses revoked identities: it follows the bridge's revocation log itself (a real
// bridge in front of a real Valkey, over mTLS with the injector's X.509-SVID), refuses an exchange
// for an identity under a revoked prefix (403) before OPA and before any cloud call, for
// revocation.deny_seconds, passes the same deny-list to OPA, and refuses everything (503) while the
// log cannot be read. A log reset (Valkey restarted empty) is noticed and the log read again.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BRIDGE_SPIFFE_ID, DEFAULT_SIDECAR_SPIFFE_ID, INJECTOR_SPIFFE_ID } from "../../support/dev-identity.ts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { freePort } from "../../support/processes.ts";
import { startValkey, type ValkeyServer } from "../../support/valkey.ts";
import {
  fixtureAccess, startTestBridge, testIdentity as bridgeTestIdentity, type TestBridge, type TestIdentity as BridgeIdentity,
} from "../../bridge/test/helpers.ts";
import { OpaClient, readOpaToken } from "../opa.ts";
import type { InjectorConfigInput } from "../server.ts";
import {
  ANALYST_ID, DEFAULT_ROLE_ARN, PIPELINE_ID, assertedHeaders, baseConfig, filterHeaders, send, sidecarTls, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

const MULTI_CLOUD_ID = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/r1";
const DENY_SECONDS = 3600;
const POLL_MS = 100;
const STALE_MS = 1500;

let identity: TestIdentity;
let bridgeIdentity: BridgeIdentity;
let valkeyDir: string;
let valkey: ValkeyServer;
let bridge: TestBridge;
let opa: OpaServer;
let moto: MotoServer;
let tls: ClientTls;
let injector: CapturedInjector;
/** The injector's clock runs this far ahead of the real one (deny windows, staleness). */
let offsetMs = 0;
const clock = () => Date.now() + offsetMs;

/** The injector's side of the mTLS connection to the bridge: its own SVID, from the bridge's CA. */
function revocationConfig(overrides: Record<string, unknown> = {}) {
  return {
    bridge_url: bridge.url,
    bridge_spiffe_id: BRIDGE_SPIFFE_ID,
    cert_file: bridgeIdentity.paths.injectorCert,
    key_file: bridgeIdentity.paths.injectorKey,
    ca_file: bridgeIdentity.paths.ca,
    poll_interval_ms: POLL_MS,
    max_log_staleness_ms: STALE_MS,
    deny_seconds: DENY_SECONDS,
    ...overrides,
  };
}

function injectorConfig(revocation: Record<string, unknown>): InjectorConfigInput {
  return {
    ...baseConfig(identity, opa),
    // The sidecar may also assert ANALYST_ID itself (a metadata listener's static identity).
    caller_rules: [{ spiffe_id: DEFAULT_SIDECAR_SPIFFE_ID, static_identities: [ANALYST_ID] }],
    aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    revocation,
  };
}

async function ask(id: string, on: CapturedInjector = injector, service = "aws_s3") {
  const reply = await send(on.url, { headers: filterHeaders(id, await identity.mint(id)), body: JSON.stringify({ service }), tls });
  return { reply, log: on.logLines().filter((line) => line.msg === "exchange").at(-1) };
}

/** POST /v1/revocations as the bridge's admin (what the filter forwards for an admin's /revoke). */
async function revoke(prefix: string): Promise<number> {
  const answer = await bridge.api.revoke({ prefix });
  expect(answer.status).toBe(200);
  return answer.json().epoch;
}

/** Until `on` has read the log past `epoch` (it polls every 100 ms). */
async function learned(epoch: number, on: CapturedInjector = injector): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((on.revocations!.status().epoch ?? -1) < epoch) {
    if (Date.now() > deadline) throw new Error(`the injector did not read epoch ${epoch}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stsCallsFor(sessionName: string): Promise<number> {
  const calls = (await moto.recordedRequests()).filter((request) => request.body.includes("AssumeRoleWithWebIdentity"));
  return calls.filter((request) => new URLSearchParams(request.body).get("RoleSessionName") === sessionName).length;
}

const REVOKED = { error: { type: "CredentialError", message: "this identity has been revoked" } };
const NOT_CURRENT = { error: { type: "CredentialError", message: "the revocation list is not current; exchanges resume once it can be read" } };

beforeAll(async () => {
  [identity, bridgeIdentity] = await Promise.all([testIdentity(), bridgeTestIdentity()]);
  valkeyDir = await mkdtemp(path.join(tmpdir(), "hexr-injector-revocation-valkey-"));
  valkey = await startValkey({ dir: valkeyDir });
  // The stack's access file lists the injector for every tenant (stack/bridge-access.ts); the
  // revocation log itself needs only that the caller be listed.
  const access = fixtureAccess(bridgeIdentity);
  access.callers.push({ spiffe_id: INJECTOR_SPIFFE_ID, tenants: ["*"] });
  bridge = await startTestBridge({ valkey: valkey.url, users: valkey.users, access });
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
  tls = await sidecarTls(identity);
  injector = await startCaptured(injectorConfig(revocationConfig()), { clock });
});

afterAll(async () => {
  await injector?.close();
  await bridge?.close();
  await Promise.all([opa?.stop(), moto?.stop(), valkey?.stop()]);
  await Promise.all([identity?.remove(), valkeyDir && rm(valkeyDir, { recursive: true, force: true })]);
});

describe("a revoked identity", () => {
  it("is refused at the injector (403) before OPA and any cloud call; other identities are unaffected", async () => {
    expect(injector.revocations!.status()).toMatchObject({ epoch: 0, revoked: [] });
    expect((await ask(ANALYST_ID)).reply.status).toBe(200);

    await moto.startRecording();
    const epoch = await revoke(`cred:${ANALYST_ID}:`);
    await learned(epoch);
    expect(injector.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation learned", prefix: `cred:${ANALYST_ID}:`, epoch }));

    const { reply, log } = await ask(ANALYST_ID);
    expect(reply.status).toBe(403);
    expect(reply.json).toEqual(REVOKED);
    expect(log).toMatchObject({ spiffe_id: ANALYST_ID, decision: "not_reached", outcome: "revoked", status: 403 });
    expect((await ask(ANALYST_ID, injector, "aws_dynamodb")).reply.json).toEqual(REVOKED);
    // Asserted by the sidecar rather than proven by a JWT-SVID: refused all the same.
    const asserted = await send(injector.url, { headers: assertedHeaders(ANALYST_ID), body: JSON.stringify({ service: "aws_s3" }), tls });
    expect(asserted.json).toEqual(REVOKED);
    expect(injector.logLines().filter((line) => line.msg === "exchange").at(-1)).toMatchObject({ identity_source: "static", outcome: "revoked" });

    // Prefix-precise: another agent of the same tenant still gets credentials.
    expect((await ask(PIPELINE_ID)).reply.status).toBe(200);
    expect(await stsCallsFor("hexr.acme-corp.research-analyst.main")).toBe(0);
    expect(await stsCallsFor("hexr.acme-corp.data-pipeline.main")).toBe(1);
  });

  it("is denied by OPA too: the same deny-list goes with every decision (input.revoked_prefixes)", async () => {
    const prefixes = injector.revocations!.prefixes();
    expect(prefixes).toEqual([`cred:${ANALYST_ID}:`]);
    const client = new OpaClient(opa.url, "hexr/exchange/decision", 2000, readOpaToken(opa.auth.tokenFile));
    try {
      const input = (spiffeId: string) => {
        const [, , tenant, agent, role] = spiffeId.slice("spiffe://".length).split("/");
        return { spiffe_id: spiffeId, tenant, agent, role, service: "aws_s3", region: "us-east-1", revoked_prefixes: prefixes };
      };
      expect(await client.decide(input(ANALYST_ID))).toEqual({ allow: false, scopes: [], reasons: ["this identity has been revoked"] });
      expect(await client.decide(input(PIPELINE_ID))).toEqual({ allow: true, scopes: ["read"], reasons: [] });
    } finally {
      client.close();
    }
  });

  it("stays refused for revocation.deny_seconds after the injector learned of it, then is exchanged again", async () => {
    offsetMs += (DENY_SECONDS - 5) * 1000;
    await injector.revocations!.pollNow(); // the log stays current on the moved clock
    expect((await ask(ANALYST_ID)).reply.json).toEqual(REVOKED);
    offsetMs += 10_000;
    await injector.revocations!.pollNow();
    expect(injector.revocations!.prefixes()).toEqual([]);
    expect((await ask(ANALYST_ID)).reply.status).toBe(200);
  });

  it("covers a tenant, and everyone, when those are revoked", async () => {
    await learned(await revoke("cred:spiffe://hexr.local/agent/acme-corp/"));
    expect((await ask(PIPELINE_ID)).reply.json).toEqual(REVOKED);
    expect((await ask(MULTI_CLOUD_ID)).reply.json).toEqual(REVOKED);
    offsetMs += DENY_SECONDS * 1000;
    await injector.revocations!.pollNow();
    expect((await ask(PIPELINE_ID)).reply.status).toBe(200);

    await learned(await revoke("cred:spiffe://"));
    expect((await ask(PIPELINE_ID)).reply.json).toEqual(REVOKED);
    offsetMs += DENY_SECONDS * 1000;
    await injector.revocations!.pollNow();
    expect((await ask(PIPELINE_ID)).reply.status).toBe(200);
  });

  it("stays refused across an injector restart when the deny-list has a state file", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "hexr-injector-revocation-state-"));
    const stateFile = path.join(stateDir, "revocations.json");
    const config = injectorConfig(revocationConfig({ state_file: stateFile }));
    try {
      const first = await startCaptured(config, { clock });
      try {
        await learned(await revoke(`cred:${MULTI_CLOUD_ID}:`), first);
        expect((await ask(MULTI_CLOUD_ID, first)).reply.json).toEqual(REVOKED);
      } finally {
        await first.close();
      }
      const restarted = await startCaptured(config, { clock });
      try {
        expect((await ask(MULTI_CLOUD_ID, restarted)).reply.json).toEqual(REVOKED);
        expect(restarted.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation state restored", revoked: 1 }));
      } finally {
        await restarted.close();
      }
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
    // The shared injector learned it too.
    expect((await ask(MULTI_CLOUD_ID)).reply.json).toEqual(REVOKED);
  });
});

describe("a log reset (Valkey restarted without its data)", () => {
  it("is noticed (the epoch went back) and the log read again, so the next revocations are learned", async () => {
    const before = injector.revocations!.status();
    expect(before.epoch).toBeGreaterThanOrEqual(4);
    expect(before.revoked.map((entry) => entry.prefix)).toContain(`cred:${MULTI_CLOUD_ID}:`);

    await valkey.stop();
    valkey = await startValkey({ port: valkey.port, dir: valkeyDir, users: valkey.users });
    const deadline = Date.now() + 10_000;
    while ((await bridge.api.health()).status !== 200) {
      if (Date.now() > deadline) throw new Error("the bridge did not reach the restarted Valkey");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Epoch 1 again, below the injector's: without noticing the reset it would ask since=5 forever.
    expect(await revoke(`cred:${PIPELINE_ID}:`)).toBe(1);
    const waitUntil = Date.now() + 5_000;
    while (!injector.revocations!.prefixes().includes(`cred:${PIPELINE_ID}:`)) {
      if (Date.now() > waitUntil) throw new Error("the revocation after the reset was not learned");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(injector.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation log reset: reading it again from the start" }));
    expect((await ask(PIPELINE_ID)).reply.json).toEqual(REVOKED);
    // What it had learned before the reset still holds.
    expect((await ask(MULTI_CLOUD_ID)).reply.json).toEqual(REVOKED);
  });
});

describe("when the log cannot be read, exchanges are refused (fail closed)", () => {
  it("answers 503 from the start when the bridge is unreachable, and calls neither OPA nor STS", async () => {
    const unreachable = await startCaptured(injectorConfig(revocationConfig({ bridge_url: `https://127.0.0.1:${await freePort()}` })), { clock });
    try {
      await moto.startRecording();
      const { reply, log } = await ask(ANALYST_ID, unreachable);
      expect(reply.status).toBe(503);
      expect(reply.json).toEqual(NOT_CURRENT);
      expect(log).toMatchObject({ decision: "not_reached", outcome: "revocations_unavailable", status: 503 });
      expect(await stsCallsFor("hexr.acme-corp.research-analyst.main")).toBe(0);
      expect(unreachable.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation log unreadable" }));
    } finally {
      await unreachable.close();
    }
  });

  it("answers 503 once the log has not been read for max_log_staleness_ms, and serves again when it is", async () => {
    await learned(0);
    expect((await ask(ANALYST_ID)).reply.status).toBe(200);
    valkey.pause(); // the bridge answers 503 to every poll
    try {
      await injector.revocations!.pollNow();
      offsetMs += STALE_MS + 500;
      const { reply, log } = await ask(ANALYST_ID);
      expect(reply.json).toEqual(NOT_CURRENT);
      expect(log).toMatchObject({ outcome: "revocations_unavailable", status: 503 });
      expect(injector.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation log not current: exchanges are refused until it is read" }));
    } finally {
      valkey.resume();
    }
    await injector.revocations!.pollNow();
    expect((await ask(ANALYST_ID)).reply.status).toBe(200);
    expect(injector.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation log readable again" }));
  });

  it("refuses a bridge whose certificate is not the configured SPIFFE ID (an impostor cannot feed it an empty log)", async () => {
    const impostor = await startCaptured(injectorConfig(revocationConfig({ bridge_spiffe_id: "spiffe://hexr.local/hexr-system/not-the-bridge" })), { clock });
    try {
      expect((await ask(ANALYST_ID, impostor)).reply.json).toEqual(NOT_CURRENT);
      expect(impostor.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation log unreadable", reason: expect.stringContaining("not spiffe://hexr.local/hexr-system/not-the-bridge") }));
    } finally {
      await impostor.close();
    }
  });

  it("is refused by the bridge when it presents an identity the access file does not list", async () => {
    const agentSvid = await bridgeIdentity.client("spiffe://hexr.local/agent/acme-corp/research-analyst/main");
    const unlisted = await startCaptured(injectorConfig(revocationConfig({ cert_file: agentSvid.cert, key_file: agentSvid.key })), { clock });
    try {
      expect((await ask(ANALYST_ID, unlisted)).reply.json).toEqual(NOT_CURRENT);
      expect(unlisted.logLines()).toContainEqual(expect.objectContaining({ msg: "revocation log unreadable", reason: "the bridge answered 403" }));
    } finally {
      await unlisted.close();
    }
  });
});

describe("logs", () => {
  it("name prefixes and epochs, never a token", async () => {
    const text = injector.logText();
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(text).not.toContain(readOpaToken(opa.auth.tokenFile));
  });
});
