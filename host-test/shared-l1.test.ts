// L1 is proxy shared data: every worker thread's VM of one Envoy sees it. Here two VMs started
// from the same module share the host's store, as two Envoy workers would.

import { describe, expect, it } from "vitest";
import {
  AGENT,
  answerWithCredential,
  cacheKey,
  cacheValue,
  credential,
  expectCachedReply,
  expectInjectorCall,
  expectInjectorReply,
  L2_CONFIG,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;

function twoWorkers(config: object = {}) {
  const { host, vm: first } = startFilter(config);
  const second = host.startVm();
  expect(second.configured).toBe(true);
  return { host, first, second };
}

describe("two VMs sharing L1", () => {
  it("serves from one worker what the other learned from the injector", () => {
    const { host, first, second } = twoWorkers();
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const stream = sendExchange(first);
    answerWithCredential(expectInjectorCall(host, MTLS_S3), issued);
    expectInjectorReply(stream, issued);

    expectCachedReply(sendExchange(second), "L1", issued);
    expectCachedReply(sendExchange(first), "L1", issued);
  });

  it("fills L1 for every worker from one worker's L2 hit", () => {
    const { host, first, second } = twoWorkers({ l2: L2_CONFIG });
    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const stream = sendExchange(second);
    const [lookup] = host.pendingHttpCalls();
    expect(lookup.vmIndex).toBe(1);
    lookup.respond({ status: 200, body: cacheValue(issued) });
    expectCachedReply(stream, "L2", issued);
    expectCachedReply(sendExchange(first), "L1", issued);
  });

  it("keeps each worker's streams and calls apart", () => {
    const { host, first, second } = twoWorkers();
    const a = sendExchange(first, { mtls: AGENT.dataPipeline });
    const b = sendExchange(second, { mtls: AGENT.reporter });
    const calls = host.pendingHttpCalls();
    expect(calls.map((call) => [call.vmIndex, call.headers.get("x-hexr-spiffe-id")])).toEqual([
      [0, AGENT.dataPipeline],
      [1, AGENT.reporter],
    ]);
    const forB = credential({ spiffeId: AGENT.reporter, expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(calls[1], forB);
    expectInjectorReply(b, forB);
    expect(a.response).toBeUndefined();
    const forA = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    answerWithCredential(calls[0], forA);
    expectInjectorReply(a, forA);
    expect(host.sharedData.read(KEY)?.text).toBe(cacheValue(forA, host.clock.nowSeconds));
    expect(host.sharedData.read(cacheKey(AGENT.reporter, "aws_s3", "us-east-1"))?.text).toBe(cacheValue(forB, host.clock.nowSeconds));
  });
});
