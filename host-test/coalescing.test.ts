// Coalescing: while one request for a key is with the injector, others for the same key wait for
// its answer instead of calling the injector too, on the same VM or on another worker's VM.

import { describe, expect, it } from "vitest";
import {
  AGENT,
  answerInjector,
  answerWithCredential,
  credential,
  expectCachedReply,
  expectContractError,
  expectInjectorCall,
  expectInjectorReply,
  INJECTOR,
  sendExchange,
  flushedCounter,
  startFilter,
} from "./support/exchange.ts";

const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;
const POLL_MS = 5;

describe("coalescing on one VM", () => {
  it("makes one injector call for concurrent requests and answers the waiters from L1", () => {
    const { host, vm } = startFilter();
    const leader = sendExchange(vm);
    const waiters = [sendExchange(vm), sendExchange(vm)];
    const call = expectInjectorCall(host, MTLS_S3);
    for (const waiter of waiters) expect(waiter.response).toBeUndefined();

    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(call, issued);
    expectInjectorReply(leader, issued);
    for (const waiter of waiters) expectCachedReply(waiter, "L1", issued);
    expect(flushedCounter(host, "hexr_coalesced_requests")).toBe(2);
    expect(host.httpCalls.filter((c) => c.cluster === INJECTOR.cluster).length).toBe(1);
  });

  it("does not hand a leader's 4xx to its waiters: each gets its own answer (a 4xx depends on the token presented)", () => {
    const { host, vm } = startFilter();
    const leader = sendExchange(vm);
    const waiter = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 403, body: JSON.stringify({ error: { type: "CredentialError", message: "denied by policy" } }) });
    expectContractError(leader, 403, "CredentialError");
    expect(waiter.response, "the waiter does not inherit the 403").toBeUndefined();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(waiter, issued);
  });

  it("does not coalesce different keys", () => {
    const { host, vm } = startFilter();
    sendExchange(vm);
    sendExchange(vm, { body: { service: "aws_s3", region: "eu-west-1" } });
    sendExchange(vm, { mtls: AGENT.reporter });
    expect(host.pendingHttpCalls().map((call) => [call.headers.get("x-hexr-spiffe-id"), call.headers.get("x-hexr-region")])).toEqual([
      [AGENT.dataPipeline, "us-east-1"],
      [AGENT.dataPipeline, "eu-west-1"],
      [AGENT.reporter, "us-east-1"],
    ]);
  });

  it("lets the next request call the injector once the leader's answer left nothing usable", () => {
    const { host, vm } = startFilter();
    const leader = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 503, body: "no healthy upstream", contentType: "text/plain" });
    expectContractError(leader, 503, "CredentialError");
    host.advance(251); // past the filter's memory of the failure
    sendExchange(vm);
    expectInjectorCall(host, MTLS_S3);
  });
});

describe("coalescing across VMs", () => {
  function twoWorkers() {
    const { host, vm: first } = startFilter({ coalesce_poll_ms: POLL_MS });
    const second = host.startVm();
    expect(second.configured).toBe(true);
    return { host, first, second };
  }

  it("has another worker's request wait for the leader and answer it from L1 on its next poll", () => {
    const { host, first, second } = twoWorkers();
    const leader = sendExchange(first);
    const waiter = sendExchange(second);
    const call = expectInjectorCall(host, MTLS_S3);
    expect(call.vmIndex).toBe(0);
    expect(waiter.response).toBeUndefined();

    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(call, issued);
    expectInjectorReply(leader, issued);
    host.advance(POLL_MS);
    expectCachedReply(waiter, "L1", issued);
    expect(flushedCounter(host, "hexr_coalesced_requests")).toBe(1);
  });

  it("lets another worker's waiter behind a leader's 401 exchange with its own token", () => {
    const { host, first, second } = twoWorkers();
    const leader = sendExchange(first);
    const waiter = sendExchange(second);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 401, body: JSON.stringify({ error: { type: "AuthenticationError", message: "token expired" } }) });
    expectContractError(leader, 401, "AuthenticationError");
    host.advance(POLL_MS);
    expect(waiter.response).toBeUndefined();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(waiter, issued);
  });

  it("gives the waiters a leader's 5xx (the injector is failing for everyone)", () => {
    const { host, vm } = startFilter();
    const leader = sendExchange(vm);
    const waiter = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 503, body: JSON.stringify({ error: { type: "CredentialError", message: "STS is unreachable" } }) });
    expectContractError(leader, 503, "CredentialError");
    expectContractError(waiter, 503, "CredentialError");
    expect(waiter.response!.json()).toEqual(leader.response!.json());
    expect(host.pendingHttpCalls()).toEqual([]);
  });

  it("takes over when the leader's VM died with the claim held", () => {
    const { host, vm: first } = startFilter({ coalesce_poll_ms: POLL_MS, debug_trap_path: "/__trap" });
    const second = host.startVm();
    sendExchange(first);
    expectInjectorCall(host, MTLS_S3);
    expect(() => sendExchange(first, { path: "/__trap" })).toThrow();
    expect(host.pendingHttpCalls()).toEqual([]); // Envoy cancels a dead VM's calls

    const orphan = sendExchange(second);
    expect(orphan.response).toBeUndefined();
    // The claim lapses at some point (the contract does not say when): poll until the orphan calls.
    for (let waited = 0; waited < 2 * INJECTOR.timeoutMs && host.pendingHttpCalls().length === 0; waited += POLL_MS) host.advance(POLL_MS);
    expect(orphan.response).toBeUndefined();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(orphan, issued);
  });
});
