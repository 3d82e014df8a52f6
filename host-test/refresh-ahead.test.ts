// Refresh-ahead: an L1 hit late in its entry's servable life (the last refresh_ahead_percent of the
// time from stored_at to expires_at − buffer) is answered from L1 and starts one background
// injector call, whose 200 refills L1 and L2.

import { describe, expect, it } from "vitest";
import {
  AGENT,
  answerWithCredential,
  BRIDGE_CLUSTER,
  cacheKey,
  cacheValue,
  credential,
  exchangeViaInjector,
  expectCachedReply,
  INJECTOR,
  L2_CONFIG,
  sendExchange,
  flushedCounter,
  startFilter,
} from "./support/exchange.ts";

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const HEXR = {
  "x-hexr-spiffe-id": AGENT.dataPipeline,
  "x-hexr-tenant": "acme-corp",
  "x-hexr-agent": "data-pipeline",
  "x-hexr-role": "main",
  "x-hexr-identity-source": "mtls",
  "x-hexr-service": "aws_s3",
  "x-hexr-region": "us-east-1",
};
// Stored at t0, expiring at t0 + 3600, buffer 600: servable for 3000 s; the last 25 % starts at t0 + 2250 s.
const LIFETIME_S = 3600;
const BUFFER = { refresh_buffer_seconds: 600 };
/** The agent's JWT-SVID, which the injector re-verifies: a refresh is only started with one. */
const WITH_TOKEN = { headers: { authorization: "Bearer agent.jwt.svid" } };
const REFRESH_FROM_S = 2250;

function injectorCalls(host: ReturnType<typeof startFilter>["host"]) {
  return host.pendingHttpCalls().filter((call) => call.cluster === INJECTOR.cluster);
}

describe("refresh-ahead", () => {
  it("answers from L1 without a background call early in the entry's life", () => {
    const filter = startFilter(BUFFER);
    const issued = credential({ expiresAt: filter.host.clock.nowSeconds + LIFETIME_S });
    exchangeViaInjector(filter, issued);
    filter.host.advance((REFRESH_FROM_S - 1) * 1000);
    expectCachedReply(sendExchange(filter.vm, WITH_TOKEN), "L1", issued);
    expect(injectorCalls(filter.host)).toEqual([]);
  });

  it("answers from L1 and starts one background injector call late in the entry's life", () => {
    const filter = startFilter(BUFFER);
    const { host, vm } = filter;
    const issued = credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S });
    exchangeViaInjector(filter, issued);
    host.advance((REFRESH_FROM_S + 1) * 1000);

    expectCachedReply(sendExchange(vm, WITH_TOKEN), "L1", issued);
    const calls = injectorCalls(host);
    expect(calls.length).toBe(1);
    const [refresh] = calls;
    expect(refresh.method).toBe("POST");
    expect(refresh.path).toBe(INJECTOR.path);
    for (const [name, value] of Object.entries(HEXR)) expect(refresh.headers.getAll(name), name).toEqual([value]);
    expect(refresh.headers.getAll("authorization"), "the token of the hit that started it").toEqual(["Bearer agent.jwt.svid"]);
    expect(JSON.parse(refresh.bodyText)).toEqual({ service: "aws_s3", region: "us-east-1" });
    expect(flushedCounter(host, "hexr_refresh_ahead_exchanges")).toBe(1);

    expectCachedReply(sendExchange(vm, WITH_TOKEN), "L1", issued);
    expect(injectorCalls(host).length, "a second refresh while one runs").toBe(1);

    const renewed = credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S });
    answerWithCredential(refresh, renewed);
    expect(host.sharedData.read(KEY)?.text).toBe(cacheValue(renewed, host.clock.nowSeconds));
    expectCachedReply(sendExchange(vm, WITH_TOKEN), "L1", renewed);
  });

  it("starts no refresh for a hit without the agent's token (the injector could only refuse it)", () => {
    const { host, vm } = startFilter(BUFFER);
    const issued = credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S });
    host.sharedData.write(KEY, cacheValue(issued, host.clock.nowSeconds));
    host.advance((REFRESH_FROM_S + 1) * 1000);
    expectCachedReply(sendExchange(vm), "L1", issued);
    expect(injectorCalls(host)).toEqual([]);
  });

  it("writes the refreshed credential through to L2", () => {
    const { host, vm } = startFilter({ ...BUFFER, l2: L2_CONFIG });
    const issued = credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S });
    host.sharedData.write(KEY, cacheValue(issued, host.clock.nowSeconds));
    host.advance((REFRESH_FROM_S + 1) * 1000);
    expectCachedReply(sendExchange(vm, WITH_TOKEN), "L1", issued);
    const renewed = credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S });
    answerWithCredential(injectorCalls(host)[0], renewed);
    const puts = host.pendingHttpCalls().filter((call) => call.cluster === BRIDGE_CLUSTER && call.method === "PUT");
    expect(puts.map((put) => put.bodyText)).toEqual([cacheValue(renewed, host.clock.nowSeconds)]);
  });

  it("keeps serving the old entry when the refresh fails", () => {
    const { host, vm } = startFilter(BUFFER);
    const issued = credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S });
    host.sharedData.write(KEY, cacheValue(issued, host.clock.nowSeconds));
    host.advance((REFRESH_FROM_S + 1) * 1000);
    expectCachedReply(sendExchange(vm, WITH_TOKEN), "L1", issued);
    injectorCalls(host)[0].respond({ status: 503, body: "no healthy upstream" });
    expectCachedReply(sendExchange(vm, WITH_TOKEN), "L1", issued);
    expect(vm.failed).toBeUndefined();
  });

  it("honours refresh_ahead_percent, 0 turning it off", () => {
    const off = startFilter({ ...BUFFER, refresh_ahead_percent: 0 });
    const issued = credential({ expiresAt: off.host.clock.nowSeconds + LIFETIME_S });
    off.host.sharedData.write(KEY, cacheValue(issued, off.host.clock.nowSeconds));
    off.host.advance((LIFETIME_S - 600 - 1) * 1000);
    expectCachedReply(sendExchange(off.vm, WITH_TOKEN), "L1", issued);
    expect(injectorCalls(off.host)).toEqual([]);

    const early = startFilter({ ...BUFFER, refresh_ahead_percent: 90 });
    early.host.sharedData.write(KEY, cacheValue(issued, early.host.clock.nowSeconds));
    early.host.advance(301 * 1000); // past the first 10 % of 3000 s
    expectCachedReply(sendExchange(early.vm, WITH_TOKEN), "L1", issued);
    expect(injectorCalls(early.host).length).toBe(1);
  });
});
