// Eviction: every eviction_interval_seconds, proxy_on_tick empties the L1 values of expired entries
// that this VM stored (ABI 0.2.1 cannot delete shared data).

import { describe, expect, it } from "vitest";
import {
  AGENT,
  cacheKey,
  cacheValue,
  credential,
  exchangeViaInjector,
  expectInjectorCall,
  sendExchange,
  startFilter,
} from "./support/exchange.ts";

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const LIFETIME_S = 700;

describe("eviction on tick", () => {
  it("empties an expired entry this VM stored, on the next eviction tick", () => {
    const filter = startFilter({ eviction_interval_seconds: 60, refresh_ahead_percent: 0, refresh_buffer_seconds: 600 });
    const { host } = filter;
    exchangeViaInjector(filter, credential({ expiresAt: host.clock.nowSeconds + LIFETIME_S }));
    expect(host.sharedData.read(KEY)!.value.byteLength).toBeGreaterThan(0);

    host.advance((LIFETIME_S - 1) * 1000);
    expect(host.sharedData.read(KEY)!.value.byteLength, "evicted before expiry").toBeGreaterThan(0);
    host.advance(61 * 1000);
    expect(host.sharedData.read(KEY)!.value.byteLength).toBe(0);
    expect(host.metrics.value("hexr_l1_evictions")).toBe(1);

    sendExchange(filter.vm);
    expectInjectorCall(filter.host, { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" });
  });

  it("leaves entries it did not store, and entries not yet expired", () => {
    const filter = startFilter({ eviction_interval_seconds: 1 });
    const { host } = filter;
    const foreign = cacheKey(AGENT.reporter, "aws_s3", "us-east-1");
    host.sharedData.write(foreign, cacheValue(credential({ expiresAt: host.clock.nowSeconds + 5 })));
    exchangeViaInjector(filter, credential({ expiresAt: host.clock.nowSeconds + 3600 }));
    host.advance(30 * 1000);
    expect(host.sharedData.read(foreign)!.value.byteLength).toBeGreaterThan(0);
    expect(host.sharedData.read(KEY)!.value.byteLength).toBeGreaterThan(0);
    expect(host.metrics.value("hexr_l1_evictions") ?? 0).toBe(0);
  });
});
