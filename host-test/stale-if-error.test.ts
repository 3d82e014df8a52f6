// Stale-if-error: when the injector fails (5xx or no answer) and L1 holds an entry past the refresh
// buffer but not yet expired, that entry is served, marked stale. Never past expires_at, and never
// in place of a 4xx (a denial is not masked).

import { describe, expect, it } from "vitest";
import type { HttpCallout, ProxyWasmHost } from "./host/index.ts";
import {
  AGENT,
  answerInjector,
  cacheKey,
  cacheValue,
  type Credential,
  credential,
  expectContractError,
  expectInjectorCall,
  INJECTOR,
  sendExchange,
  flushedCounter,
  startFilter,
} from "./support/exchange.ts";

const KEY = cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1");
const MTLS_S3 = { spiffeId: AGENT.dataPipeline, source: "mtls", service: "aws_s3", region: "us-east-1" } as const;
const WARNING = '110 - "stale credential: the credential injector is unavailable"';

/** L1 holds an entry that expires in `remainingS` seconds (inside the 600 s buffer if < 600). */
function withAgingEntry(remainingS: number): { host: ProxyWasmHost; vm: ReturnType<typeof startFilter>["vm"]; issued: Credential } {
  const { host, vm } = startFilter({ refresh_ahead_percent: 0 });
  const issued = credential({ expiresAt: host.clock.nowSeconds + remainingS });
  host.sharedData.write(KEY, cacheValue(issued, host.clock.nowSeconds - 3000));
  return { host, vm, issued };
}

function expectStale(stream: ReturnType<typeof sendExchange>, issued: Credential): void {
  const response = stream.response!;
  expect(response.status).toBe(200);
  expect(response.bodyText).toBe(issued.body);
  expect(response.headers.getAll("x-hexr-cache")).toEqual(["L1-stale"]);
  expect(response.headers.getAll("warning")).toEqual([WARNING]);
  expect(response.headers.get("content-type")).toMatch(/^application\/json\b/);
}

const failures: [string, (call: HttpCallout, host: ProxyWasmHost) => void][] = [
  ["a 503 from Envoy", (call) => answerInjector(call, { status: 503, body: "no healthy upstream", contentType: "text/plain" })],
  ["a 500 contract error", (call) => answerInjector(call, { status: 500, body: JSON.stringify({ error: { type: "CredentialError", message: "STS down" } }) })],
  ["no answer (reset)", (call) => call.reset()],
  ["the call's timeout", (_, host) => host.advance(INJECTOR.timeoutMs)],
];

describe("stale-if-error", () => {
  it.each(failures)("serves the aging L1 entry, marked stale, on %s", (_, fail) => {
    const { host, vm, issued } = withAgingEntry(300);
    const stream = sendExchange(vm);
    expect(stream.response).toBeUndefined();
    fail(expectInjectorCall(host, MTLS_S3), host);
    expectStale(stream, issued);
    expect(flushedCounter(host, "hexr_stale_served")).toBe(1);
  });

  it.each([
    [401, "AuthenticationError"],
    [403, "CredentialError"],
  ] as const)("does not mask a %i", (status, type) => {
    const { host, vm } = withAgingEntry(300);
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status, body: JSON.stringify({ error: { type, message: "refused" } }) });
    expectContractError(stream, status, type);
  });

  it("never serves an entry past expires_at", () => {
    const { host, vm } = withAgingEntry(300);
    host.advance(300 * 1000);
    const stream = sendExchange(vm);
    answerInjector(expectInjectorCall(host, MTLS_S3), { status: 503, body: "no healthy upstream", contentType: "text/plain" });
    expectContractError(stream, 503, "CredentialError");
  });

  it("serves stale up to the last second before expiry", () => {
    const { host, vm, issued } = withAgingEntry(300);
    host.advance(299 * 1000);
    const stream = sendExchange(vm);
    expectInjectorCall(host, MTLS_S3).reset();
    expectStale(stream, issued);
  });
});
