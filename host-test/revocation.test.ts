// Revocation: an admin identity asks the filter to revoke an identity's, a tenant's or all
// credentials; the filter records it through the bridge and empties the matching L1 entries. Every
// VM polls the bridge's revocation log and empties what others revoked.

import { describe, expect, it } from "vitest";
import type { HttpCallout, ProxyWasmHost, Vm } from "./host/index.ts";
import {
  AGENT,
  answerWithCredential,
  BRIDGE_CLUSTER,
  cacheKey,
  cacheValue,
  credential,
  expectContractError,
  expectNothingOnward,
  expectInjectorCall,
  L2_CONFIG,
  missL2,
  mtlsPeer,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const ADMIN = "spiffe://hexr.local/agent/acme-corp/ops/admin";
const POLL_MS = 1000;
const CONFIG = { l2: L2_CONFIG, revocation: { path: "/revoke", admin_spiffe_ids: [ADMIN], poll_interval_ms: POLL_MS } };
const LOOKALIKE = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main-2";
const OTHER_TENANT_LOOKALIKE = "spiffe://hexr.local/agent/acme-corp-2/data-pipeline/main";
const IDENTITIES: string[] = [AGENT.dataPipeline, LOOKALIKE, AGENT.dataPipelineWorker, AGENT.reporter, AGENT.otherTenant, OTHER_TENANT_LOOKALIKE, AGENT.otherTrustDomain];

/**
 * The VM learns a credential for every identity in IDENTITIES from the injector and stores it in
 * L1 (a VM can only empty entries it stored: ABI 0.2.1 cannot list shared data).
 */
function fillL1(host: ProxyWasmHost, vm: Vm): void {
  for (const id of IDENTITIES) {
    const stream = sendExchange(vm, { mtls: id });
    missL2(host);
    answerWithCredential(expectInjectorCall(host, { spiffeId: id, source: "mtls", service: "aws_s3", region: "us-east-1" }), credential({ spiffeId: id, expiresAt: host.clock.nowSeconds + 3600 }));
    expect(stream.response?.status).toBe(200);
    for (const put of bridgeCalls(host, "PUT", "/v1/cred/")) put.respond({ status: 204 });
  }
  expect(stillCached(host)).toEqual(IDENTITIES);
}

/** The identities whose L1 entry still holds a value. */
function stillCached(host: ProxyWasmHost): string[] {
  return IDENTITIES.filter((id) => (host.sharedData.read(cacheKey(id, "aws_s3", "us-east-1"))?.value.byteLength ?? 0) > 0);
}

function bridgeCalls(host: ProxyWasmHost, method: string, path: string): HttpCallout[] {
  return host.pendingHttpCalls().filter((call) => call.cluster === BRIDGE_CLUSTER && call.method === method && call.path!.startsWith(path));
}

/** Sends the admin's revocation (an object is sent as JSON, a string as is). */
function revoke(body: object | string, identity = ADMIN) {
  const filter = startFilter(CONFIG);
  fillL1(filter.host, filter.vm);
  const stream = sendExchange(filter.vm, { mtls: identity, path: "/revoke", body });
  return { ...filter, stream };
}

function expectRecorded(host: ProxyWasmHost): { call: HttpCallout; prefix: string } {
  const calls = bridgeCalls(host, "POST", "/v1/revocations");
  expect(calls.length).toBe(1);
  const request = JSON.parse(calls[0].bodyText) as { prefix?: unknown };
  expect(Object.keys(request)).toEqual(["prefix"]);
  expect(typeof request.prefix).toBe("string");
  return { call: calls[0], prefix: request.prefix as string };
}

describe("an admin's revocation", () => {
  it("hands the admin's own token to the bridge, which verifies it before it purges anything", () => {
    const filter = startFilter(CONFIG);
    sendExchange(filter.vm, { mtls: ADMIN, path: "/revoke", body: { all: true }, headers: { authorization: "Bearer admin.jwt.svid" } });
    const { call } = expectRecorded(filter.host);
    expect(call.headers.getAll("authorization")).toEqual(["Bearer admin.jwt.svid"]);
  });

  it.each<[string, object, string[]]>([
    ["one identity", { spiffe_id: AGENT.dataPipeline }, [AGENT.dataPipeline]],
    ["a tenant (in the admin's trust domain)", { tenant: "acme-corp" }, [AGENT.dataPipeline, LOOKALIKE, AGENT.dataPipelineWorker, AGENT.reporter]],
    ["everything", { all: true }, IDENTITIES],
  ])("of %s is recorded through the bridge, answered, and empties exactly those L1 entries", (_, body, revoked) => {
    const { host, stream } = revoke(body);
    const { call, prefix } = expectRecorded(host);
    for (const id of IDENTITIES) {
      expect(cacheKey(id, "gcp_storage", "eu-west-1").startsWith(prefix), `${prefix} covers ${id}`).toBe(revoked.includes(id));
    }
    call.respond({ status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify({ epoch: 7, deleted: 3 }) });
    expect(stream.response?.status).toBe(200);
    expect(stream.response?.json()).toEqual({ revoked: prefix, epoch: 7 });
    expect(stillCached(host)).toEqual(IDENTITIES.filter((id) => !revoked.includes(id)));
  });

  it("is refused to an identity that is not an admin", () => {
    const { host, stream } = revoke({ spiffe_id: AGENT.reporter }, AGENT.dataPipeline);
    expectContractError(stream, 403, "CredentialError");
    expect(host.httpCalls.filter((call) => call.path === "/v1/revocations")).toEqual([]);
    expect(stillCached(host)).toEqual(IDENTITIES);
  });

  it("is refused without a verified identity", () => {
    const { vm } = startFilter(CONFIG);
    expectContractError(sendExchange(vm, { path: "/revoke", properties: {}, body: { all: true } }), 401, "AuthenticationError");
  });

  it.each([["{}"], ['{"spiffe_id": 5}'], ['{"spiffe_id": "not a spiffe id"}'], ['{"tenant": ""}'], ['{"all": false}'], ["revoke everything"]])(
    "answers a bad body %s with 400",
    (body) => {
      const { host, stream } = revoke(body);
      expectContractError(stream, 400, "BadRequest");
      expect(host.httpCalls.filter((call) => call.path === "/v1/revocations")).toEqual([]);
    },
  );

  it.each([
    ["a 500", (call: HttpCallout) => call.respond({ status: 500 })],
    ["a reset", (call: HttpCallout) => call.reset()],
  ])("answers 503 when the bridge fails with %s, and empties nothing", (_, fail) => {
    const { host, stream } = revoke({ spiffe_id: AGENT.dataPipeline });
    fail(expectRecorded(host).call);
    expectContractError(stream, 503, "CredentialError");
    expect(stillCached(host)).toEqual(IDENTITIES);
  });
});

describe("polling the revocation log", () => {
  function nextPoll(host: ProxyWasmHost): HttpCallout {
    for (let waited = 0; waited <= 2 * POLL_MS && bridgeCalls(host, "GET", "/v1/revocations").length === 0; waited += 100) host.advance(100);
    const polls = bridgeCalls(host, "GET", "/v1/revocations");
    expect(polls.length, "pending revocation polls").toBe(1);
    return polls[0];
  }

  it("starts from since=-1, follows the epoch, and empties the entries under each new prefix", () => {
    const { host, vm } = startFilter(CONFIG);
    fillL1(host, vm);
    const first = nextPoll(host);
    expect(first.path).toBe("/v1/revocations?since=-1");
    first.respond({ status: 200, body: JSON.stringify({ epoch: 4, prefixes: [] }) });
    expect(stillCached(host)).toEqual(IDENTITIES);

    const second = nextPoll(host);
    expect(second.path).toBe("/v1/revocations?since=4");
    second.respond({ status: 200, body: JSON.stringify({ epoch: 6, prefixes: [`cred:${AGENT.reporter}:`, "cred:spiffe://hexr.local/agent/globex/"] }) });
    expect(stillCached(host)).toEqual(IDENTITIES.filter((id) => id !== AGENT.reporter && id !== AGENT.otherTenant));

    expect(nextPoll(host).path).toBe("/v1/revocations?since=6");
  });

  it("keeps its epoch when a poll fails, and survives garbage", () => {
    const { host, vm } = startFilter(CONFIG);
    nextPoll(host).respond({ status: 200, body: JSON.stringify({ epoch: 2, prefixes: [] }) });
    nextPoll(host).respond({ status: 503, body: "no healthy upstream" });
    nextPoll(host).reset();
    nextPoll(host).respond({ status: 200, body: '{"epoch": "x", "prefixes": [1]}' });
    expect(nextPoll(host).path).toBe("/v1/revocations?since=2");
    expect(vm.failed).toBeUndefined();
  });

  it("is done by every VM", () => {
    const { host } = startFilter(CONFIG);
    host.startVm();
    host.advance(POLL_MS);
    expect(bridgeCalls(host, "GET", "/v1/revocations").map((call) => call.vmIndex).sort()).toEqual([0, 1]);
  });
});

describe("revocation that holds (attacks)", () => {
  /** A revoked identity is refused outright for deny_seconds; these tests look past that window, at what was stored before. */
  const SHORT_DENY = { ...CONFIG, revocation: { ...CONFIG.revocation, deny_seconds: 1 } };
  const pastRefusal = (host: ProxyWasmHost) => host.advance(1500);

  it("refuses the revoked identity outright for deny_seconds, from every tier, then exchanges it again", () => {
    const { host, vm } = startFilter({ ...CONFIG, revocation: { ...CONFIG.revocation, deny_seconds: 5 } });
    fillL1(host, vm);
    answerPolls(host, 3);
    host.advance(1000);
    answerPolls(host, 4, [`cred:${AGENT.reporter}:`]);
    const refused = sendExchange(vm, { mtls: AGENT.reporter });
    expectContractError(refused, 403, "CredentialError");
    expect(bridgeCalls(host, "GET", "/v1/cred/"), "not even L2 is asked").toEqual([]);
    expect(ask(host, vm, AGENT.dataPipeline), "another identity is untouched").toBe("L1");
    for (let waited = 0; waited < 5000; waited += 500) {
      host.advance(500);
      for (const poll of bridgeCalls(host, "GET", "/v1/revocations")) poll.respond({ status: 200, body: JSON.stringify({ epoch: 4, prefixes: [] }) });
    }
    expect(ask(host, vm, AGENT.reporter), "after deny_seconds: a miss (its old entry is not served), exchanged again").toBe("miss");
  });

  it("refuses the revoked identity at the vault door too, forwarding nothing", () => {
    const { host, vm } = startFilter({ ...CONFIG, vault: true });
    answerPolls(host, 3);
    host.advance(1000);
    answerPolls(host, 4, [`cred:${AGENT.reporter}:`]);
    const stream = vm.newHttpStream({ properties: mtlsPeer(AGENT.reporter) });
    stream.sendRequestHeaders([[":method", "GET"], [":path", "/v1/secrets/NAME"], [":authority", "sidecar"], [":scheme", "http"]], { endOfStream: true });
    expectContractError(stream, 403, "CredentialError");
    expectNothingOnward(stream);
  });

  /** Answers every pending revocation poll of the host: the first with where the log stands, later ones as given. */
  function answerPolls(host: ProxyWasmHost, epoch: number, prefixes: string[] = []): void {
    for (let waited = 0; waited <= 2 * POLL_MS && bridgeCalls(host, "GET", "/v1/revocations").length === 0; waited += 100) host.advance(100);
    for (const poll of bridgeCalls(host, "GET", "/v1/revocations")) poll.respond({ status: 200, body: JSON.stringify({ epoch, prefixes }) });
  }

  /** A request for `id`'s aws_s3 credential: "L1" when served from L1, "miss" when it went on to L2. */
  function ask(host: ProxyWasmHost, vm: Vm, id: string): string {
    const stream = sendExchange(vm, { mtls: id });
    if (stream.response) return stream.response.headers.get("x-hexr-cache") ?? String(stream.response.status);
    for (const call of host.pendingHttpCalls()) call.respond({ status: 404 }); // L2 misses; the rest is not this test's
    return "miss";
  }

  it("a VM that replaced the one that stored an entry never serves it once its identity is revoked", () => {
    const { host, vm } = startFilter(SHORT_DENY);
    fillL1(host, vm);
    answerPolls(host, 3);
    const replacement = host.startVm(); // the failure policy reloads a VM: the new one indexes nothing
    answerPolls(host, 3);
    host.advance(1000); // the revocation comes a second after the entries were stored
    answerPolls(host, 4, [`cred:${AGENT.reporter}:`]);
    pastRefusal(host);
    expect(ask(host, replacement, AGENT.reporter), "revoked, though no VM still indexes its entry").toBe("miss");
    expect(ask(host, replacement, AGENT.dataPipeline), "another identity is untouched").toBe("L1");
  });

  it("an entry written back into L2 after the purge (a late write-through) is never served", () => {
    const { host, vm } = startFilter(SHORT_DENY);
    answerPolls(host, 3);
    const storedAt = host.clock.nowSeconds;
    host.advance(2000);
    answerPolls(host, 4, [`cred:${AGENT.reporter}:`]);
    pastRefusal(host);
    for (const poll of bridgeCalls(host, "GET", "/v1/revocations")) poll.respond({ status: 503 });
    const stream = sendExchange(vm, { mtls: AGENT.reporter });
    const [lookup] = bridgeCalls(host, "GET", "/v1/cred/");
    lookup.respond({ status: 200, body: cacheValue(credential({ spiffeId: AGENT.reporter, expiresAt: host.clock.nowSeconds + 3600 }), storedAt) });
    expect(stream.response, "the refilled value was not served").toBeUndefined();
  });

  it("a revoked entry is not served stale either when the injector fails", () => {
    const { host, vm } = startFilter(SHORT_DENY);
    fillL1(host, vm);
    answerPolls(host, 3);
    host.advance(1000);
    answerPolls(host, 4, [`cred:${AGENT.reporter}:`]);
    pastRefusal(host);
    for (const poll of bridgeCalls(host, "GET", "/v1/revocations")) poll.respond({ status: 503 });
    const stream = sendExchange(vm, { mtls: AGENT.reporter });
    for (const call of bridgeCalls(host, "GET", "/v1/cred/")) call.respond({ status: 404 });
    for (const call of bridgeCalls(host, "PUT", "/v1/locks/")) call.respond({ status: 201 });
    for (const call of bridgeCalls(host, "GET", "/v1/cred/")) call.respond({ status: 404 });
    host.pendingHttpCalls().find((call) => call.cluster !== BRIDGE_CLUSTER)!.respond({ status: 503, body: "no healthy upstream" });
    expectContractError(stream, 503, "CredentialError");
  });

  it("when the log has a gap (revocations trimmed or lost before this sidecar read them), nothing stored before is served", () => {
    const { host, vm } = startFilter(CONFIG);
    fillL1(host, vm);
    answerPolls(host, 3);
    host.advance(1000);
    for (let waited = 0; bridgeCalls(host, "GET", "/v1/revocations").length === 0 && waited < 2 * POLL_MS; waited += 100) host.advance(100);
    for (const poll of bridgeCalls(host, "GET", "/v1/revocations")) poll.respond({ status: 200, body: JSON.stringify({ epoch: 9, prefixes: [], gap: true }) });
    for (const id of IDENTITIES) expect(ask(host, vm, id), id).toBe("miss");
    expect(stillCached(host), "this VM's entries are emptied too").toEqual([]);
  });

  it("when the log cannot be read for max_log_staleness_ms, entries stored before then are not served, and are again once it can", () => {
    const { host, vm } = startFilter({ ...CONFIG, revocation: { ...CONFIG.revocation, max_log_staleness_ms: 5000 } });
    fillL1(host, vm);
    answerPolls(host, 3);
    expect(ask(host, vm, AGENT.dataPipeline)).toBe("L1");
    for (let waited = 0; waited < 7000; waited += 500) {
      host.advance(500);
      for (const poll of bridgeCalls(host, "GET", "/v1/revocations")) poll.respond({ status: 503, body: "no healthy upstream" });
    }
    expect(ask(host, vm, AGENT.dataPipeline), "fail closed: the log has been unreadable for 7 s").toBe("miss");
    answerPolls(host, 3);
    expect(ask(host, vm, AGENT.dataPipeline), "the log is readable again and revoked nothing").toBe("L1");
  });
});
