// L2, the Valkey bridge behind an HTTP call: a hit fills L1 and answers with x-hexr-cache: L2;
// anything else (miss, 5xx, garbage, expired entry, reset, timeout) falls through to the injector,
// after the cross-pod lock; an injector 200 is written through with a PUT that nobody waits for.
// Bridge trouble never fails a request that L3 can serve.

import { describe, expect, it } from "vitest";
import type { HttpCallout, HttpStream, ProxyWasmHost } from "./host/index.ts";
import {
  AGENT,
  answerWithCredential,
  BRIDGE_CLUSTER,
  cacheKey,
  cacheValue,
  credential,
  credentialEntries,
  expectCachedReply,
  expectInjectorCall,
  expectInjectorReply,
  INJECTOR,
  L2_CONFIG,
  missL2,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;
const CRED_PREFIX = "/v1/cred/";
const LOCK_PREFIX = "/v1/locks/";

function startWithL2() {
  return startFilter({ l2: L2_CONFIG });
}

/** The single pending call to the bridge, checked as the contract's GET for `key`. */
function expectL2Get(host: ProxyWasmHost, key = KEY): HttpCallout {
  const calls = host.pendingHttpCalls().filter((call) => call.cluster === BRIDGE_CLUSTER);
  expect(calls.length, "pending calls to the bridge").toBe(1);
  const call = calls[0];
  expect(call.method).toBe("GET");
  expect(call.authority).toBe(L2_CONFIG.authority);
  expect(call.timeoutMs).toBe(L2_CONFIG.timeout_ms);
  expect(call.path!.startsWith(CRED_PREFIX)).toBe(true);
  const encoded = call.path!.slice(CRED_PREFIX.length);
  expect(encoded).not.toMatch(/[:/?#\s]/);
  expect(decodeURIComponent(encoded)).toBe(key);
  return call;
}

/**
 * The pending cross-pod lock request for `key`: PUT /v1/locks/{key} with the injector's timeout as
 * TTL and a holder token as the body (the bridge's lock resource).
 */
function expectLock(host: ProxyWasmHost, key = KEY): HttpCallout {
  const calls = host.pendingHttpCalls();
  expect(calls.length, "pending calls").toBe(1);
  const call = calls[0];
  expect([call.cluster, call.method, call.authority]).toEqual([BRIDGE_CLUSTER, "PUT", L2_CONFIG.authority]);
  const [path, query] = call.path!.split("?");
  expect(path.startsWith(LOCK_PREFIX)).toBe(true);
  expect(decodeURIComponent(path.slice(LOCK_PREFIX.length))).toBe(key);
  expect(Object.fromEntries(new URLSearchParams(query))).toEqual({ ttl_ms: String(INJECTOR.timeoutMs) });
  expect(call.bodyText.length, "a holder token").toBeGreaterThan(0);
  return call;
}

/** The pending release of the lock on `key`, with the token the lock was taken with. */
function expectRelease(host: ProxyWasmHost, token: string, key = KEY): void {
  const releases = host.pendingHttpCalls().filter((pending) => pending.method === "DELETE");
  expect(releases.length).toBe(1);
  expect([releases[0].cluster, releases[0].authority]).toEqual([BRIDGE_CLUSTER, L2_CONFIG.authority]);
  expect(decodeURIComponent(releases[0].path!.slice(LOCK_PREFIX.length))).toBe(key);
  expect(releases[0].bodyText).toBe(token);
}

/**
 * After an L2 miss: the cross-pod lock is granted and L2 still misses, so the filter goes on to the
 * injector. Returns the holder token the lock was taken with.
 */
function grantLock(host: ProxyWasmHost): string {
  const lock = expectLock(host);
  lock.respond({ status: 201 });
  expectL2Get(host).respond({ status: 404 });
  return lock.bodyText;
}

/** An exchange that missed L1 and is waiting for the bridge. */
function missL1(host: ProxyWasmHost, stream: HttpStream): HttpCallout {
  expect(stream.response).toBeUndefined();
  expect(host.pendingHttpCalls().filter((call) => call.cluster !== BRIDGE_CLUSTER)).toEqual([]);
  return expectL2Get(host);
}

describe("L2 lookup", () => {
  it("asks the bridge after an L1 miss, before the injector", () => {
    const { host, vm } = startWithL2();
    missL1(host, sendExchange(vm));
  });

  it("does not ask the bridge on an L1 hit", () => {
    const { host, vm } = startWithL2();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(KEY, cacheValue(issued));
    expectCachedReply(sendExchange(vm), "L1", issued);
    expect(host.httpCalls).toEqual([]);
  });

  it("answers a hit with x-hexr-cache: L2 and fills L1 with the value", () => {
    const { host, vm } = startWithL2();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 200, headers: { "content-type": "application/octet-stream" }, body: cacheValue(issued, host.clock.nowSeconds - 30) });
    expectCachedReply(stream, "L2", issued);
    expect(host.sharedData.read(KEY)?.text).toMatch(new RegExp(`^${issued.expiresAt}(,\\d+)?\n`));
    expect(host.sharedData.read(KEY)?.text.endsWith(`\n${issued.body}`)).toBe(true);
    expect(host.pendingHttpCalls()).toEqual([]);

    expectCachedReply(sendExchange(vm), "L1", issued);
  });

  const fallThrough: [string, (call: HttpCallout, host: ProxyWasmHost) => void][] = [
    ["a miss (404)", (call) => call.respond({ status: 404 })],
    ["a 500", (call) => call.respond({ status: 500, body: "valkey unavailable" })],
    ["a 503 from Envoy", (call) => call.respond({ status: 503, headers: { "content-type": "text/plain" }, body: "no healthy upstream" })],
    ["a 200 with garbage", (call) => call.respond({ status: 200, body: "\u0000\u00ff not an entry" })],
    ["a 200 with an empty body", (call) => call.respond({ status: 200 })],
    ["a 200 with JSON but no expiry line", (call) => call.respond({ status: 200, body: '{"service":"aws_s3"}' })],
    ["a 200 with an expired entry", (call, host) => call.respond({ status: 200, body: cacheValue(credential({ expiresAt: host.clock.nowSeconds - 1 })) })],
    ["a 200 with an entry inside the refresh buffer", (call, host) => call.respond({ status: 200, body: cacheValue(credential({ expiresAt: host.clock.nowSeconds + 599 })) })],
    ["a 204", (call, host) => call.respond({ status: 204, body: cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })) })],
    ["a reset (no headers)", (call) => call.reset()],
    ["the timeout", (_, host) => host.advance(L2_CONFIG.timeout_ms)],
  ];

  it.each(fallThrough)("falls through to the injector on %s", (_, answer) => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    answer(missL1(host, stream), host);
    expect(stream.response).toBeUndefined();
    grantLock(host);
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);
  });

  it("goes straight to the injector when the bridge's cluster does not exist", () => {
    const { host, vm } = startFilter({ l2: L2_CONFIG }, { clusters: ["hexr_injector"] });
    const stream = sendExchange(vm);
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);
  });

  it("survives an L2 answer for a client that has gone away", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    const call = missL1(host, stream);
    stream.resetByClient();
    call.respond({ status: 200, body: cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })) });
    expect(stream.response).toBeUndefined();
    expect(vm.failed).toBeUndefined();
  });
});

describe("L2 write-through", () => {
  function l3Answered(host: ProxyWasmHost, stream: HttpStream, expiresAt: number) {
    missL1(host, stream).respond({ status: 404 });
    grantLock(host);
    const issued = credential({ expiresAt });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    return issued;
  }

  it("PUTs the value to the bridge after an injector 200, without holding the reply back", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    const issued = l3Answered(host, stream, host.clock.nowSeconds + 3600);

    expectInjectorReply(stream, issued);
    expect(stream.state).toBe("complete");
    const puts = host.pendingHttpCalls().filter((call) => call.method === "PUT");
    expect(puts.length).toBe(1);
    const put = puts[0];
    expect(put.cluster).toBe(BRIDGE_CLUSTER);
    expect(put.method).toBe("PUT");
    expect(put.authority).toBe(L2_CONFIG.authority);
    const [path, query] = put.path!.split("?");
    expect(decodeURIComponent(path.slice(CRED_PREFIX.length))).toBe(KEY);
    const ttl = /^ttl_ms=(\d+)$/.exec(query ?? "");
    expect(ttl, `query ${query}`).not.toBeNull();
    expect(Number(ttl![1])).toBeGreaterThan(0);
    expect(Number(ttl![1])).toBeLessThanOrEqual(3600 * 1000);
    expect(put.bodyText).toBe(cacheValue(issued, host.clock.nowSeconds));
  });

  it.each([
    ["succeeds", (put: HttpCallout) => put.respond({ status: 204 })],
    ["fails", (put: HttpCallout) => put.respond({ status: 500, body: "OOM command not allowed" })],
    ["is reset", (put: HttpCallout) => put.reset()],
  ])("carries on whether the PUT %s", (_, answer) => {
    const { host, vm } = startWithL2();
    const issued = l3Answered(host, sendExchange(vm), host.clock.nowSeconds + 3600);
    answer(host.pendingHttpCalls().find((call) => call.method === "PUT")!);
    expectCachedReply(sendExchange(vm), "L1", issued);
    expect(vm.failed).toBeUndefined();
  });

  it("does not write through what it does not cache", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    l3Answered(host, stream, host.clock.nowSeconds + 120);
    expect(stream.response?.status).toBe(200);
    expect(host.pendingHttpCalls().filter((call) => call.method === "PUT")).toEqual([]);
    expect(credentialEntries(host)).toEqual([]);
  });

  it("does not write an L2 hit back to L2", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 200, body: cacheValue(credential({ expiresAt: host.clock.nowSeconds + 3600 })) });
    expect(stream.response?.status).toBe(200);
    expect(host.pendingHttpCalls()).toEqual([]);
  });
});

describe("the cross-pod exchange lock", () => {
  it("asks for the lock after an L2 miss, and calls the injector only once it has it", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    const lock = expectLock(host);
    expect(host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster)).toEqual([]);
    lock.respond({ status: 201 });
    expect(host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster), "the injector before the last L2 look").toEqual([]);
    expectL2Get(host).respond({ status: 404 });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);
  });

  it("answers from L2 when the entry landed just before the lock was granted, and lets the lock go", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    const lock = expectLock(host);
    lock.respond({ status: 201 });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    expectL2Get(host).respond({ status: 200, body: cacheValue(issued, host.clock.nowSeconds) });
    expect(stream.response?.headers.get("x-hexr-cache")).toBe("L2");
    expect(host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster)).toEqual([]);
    expectRelease(host, lock.bodyText, cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"));
  });

  it("lets the lock go only once its L2 write-through has landed", () => {
    const { host, vm } = startWithL2();
    sendExchange(vm);
    missL2(host);
    answerWithCredential(expectInjectorCall(host, MTLS_S3), credential({ expiresAt: host.clock.nowSeconds + 3600 }));
    const writes = host.pendingHttpCalls();
    expect(writes.map((call) => call.method), "only the write-through while it is in flight").toEqual(["PUT"]);
    writes[0].respond({ status: 204 });
    expect(host.pendingHttpCalls().map((call) => call.method)).toEqual(["DELETE"]);
  });

  it("while another pod holds the lock, polls L2 and answers from it when the entry appears", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    expectLock(host).respond({ status: 409 });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    for (let polls = 0; polls < 3; polls++) {
      for (let waited = 0; waited < INJECTOR.timeoutMs && host.pendingHttpCalls().length === 0; waited += 5) host.advance(5);
      expect(host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster), "the injector while another pod holds the lock").toEqual([]);
      const poll = expectL2Get(host);
      if (polls < 2) {
        poll.respond({ status: 404 });
        expectLock(host).respond({ status: 409 }); // still held: wait on
      } else {
        poll.respond({ status: 200, body: cacheValue(issued, host.clock.nowSeconds) });
      }
    }
    expectCachedReply(stream, "L2", issued);
    expect(host.httpCalls.filter((call) => call.cluster === INJECTOR.cluster)).toEqual([]);
  });

  it("takes the lock and exchanges as soon as the other pod let it go without an entry (its exchange failed)", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    expectLock(host).respond({ status: 409 });
    const start = host.clock.nowMs;
    for (let waited = 0; host.pendingHttpCalls().length === 0 && waited < INJECTOR.timeoutMs; waited += 5) host.advance(5);
    expectL2Get(host).respond({ status: 404 });
    grantLock(host);
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);
    expect(host.clock.nowMs - start, "well before the other pod's lock would have run out").toBeLessThan(100);
  });

  it("lets the claim go when an agent waiting for another pod's lock hangs up, so the next request leads at once", () => {
    const { host, vm } = startWithL2();
    const first = sendExchange(vm);
    missL1(host, first).respond({ status: 404 });
    expectLock(host).respond({ status: 409 });
    first.resetByClient();
    for (let waited = 0; waited < 100; waited += 5) host.advance(5); // the tick notices the hang-up
    expect(host.pendingHttpCalls(), "nothing is asked for an agent that has gone").toEqual([]);
    const second = sendExchange(vm);
    missL1(host, second).respond({ status: 404 });
    expect(expectLock(host), "the second request leads instead of waiting for a claim nobody holds").toBeDefined();
  });

  it("calls the injector itself once the other pod's lock has lapsed without an entry", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    expectLock(host).respond({ status: 409 });
    const start = host.clock.nowMs;
    // The other pod holds its lock throughout (409) and never writes an entry (404).
    const answerBridge = () => {
      for (const call of host.pendingHttpCalls().filter((pending) => pending.cluster === BRIDGE_CLUSTER)) call.respond({ status: call.method === "PUT" ? 409 : 404 });
    };
    while (host.pendingHttpCalls().every((call) => call.cluster !== INJECTOR.cluster) && host.clock.nowMs - start < 3 * INJECTOR.timeoutMs) {
      answerBridge();
      answerBridge();
      host.advance(5);
    }
    answerBridge();
    expect(host.clock.nowMs - start).toBeGreaterThanOrEqual(INJECTOR.timeoutMs);
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);
  });

  it.each([
    ["a 500", (call: HttpCallout) => call.respond({ status: 500 })],
    ["a reset", (call: HttpCallout) => call.reset()],
  ])("calls the injector when the lock request fails with %s", (_, fail) => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    fail(expectLock(host));
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);
  });

  it("calls the injector when the lock request times out", () => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    expectLock(host);
    host.advance(L2_CONFIG.timeout_ms);
    answerWithCredential(expectInjectorCall(host, MTLS_S3), credential({ expiresAt: host.clock.nowSeconds + 3600 }));
    expect(stream.response?.status).toBe(200);
  });

  it.each([
    ["a 200", 200],
    ["a 503", 503],
  ])("releases the lock (DELETE, nobody waits) when its exchange ends with %s", (_, status) => {
    const { host, vm } = startWithL2();
    const stream = sendExchange(vm);
    missL1(host, stream).respond({ status: 404 });
    const token = grantLock(host);
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const call = expectInjectorCall(host, MTLS_S3);
    if (status === 200) answerWithCredential(call, issued);
    else call.respond({ status, body: "no healthy upstream" });
    expect(stream.response?.status).toBe(status);
    // After a 200 the lock goes once the entry is in L2 (see "lets the lock go only once ...").
    if (status === 200) host.pendingHttpCalls().find((pending) => pending.method === "PUT")!.respond({ status: 204 });
    expectRelease(host, token);
  });
});
