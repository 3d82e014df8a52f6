// Every path but the exchange path passes through untouched: the request (x-hexr-* headers
// included) and the response reach their peers as sent, and nothing is cached or counted.

import { describe, expect, it } from "vitest";
import { Action } from "./host/index.ts";
import { AGENT, credential, credentialEntries, startFilter } from "./support/exchange.ts";

const requestHeaders = (path: string, method = "POST"): [string, string][] => [
  [":method", method],
  [":path", path],
  [":authority", "127.0.0.1:15080"],
  [":scheme", "http"],
  ["content-type", "application/json"],
  ["x-hexr-spiffe-id", AGENT.otherTenant],
  ["x-hexr-cache", "L1"],
  ["authorization", "Bearer not-for-the-filter"],
];

describe("other paths", () => {
  it.each(["/healthz", "/exchange/", "/exchange/aws_s3", "/exchanges", "/Exchange", "/v1/exchange", "/"])("passes %s through untouched", (path) => {
    const { host, vm } = startFilter();
    const stream = vm.newHttpStream({ properties: { connection: { uri_san_peer_certificate: AGENT.dataPipeline } } });
    const body = JSON.stringify({ service: "aws_s3" });
    expect(stream.sendRequestHeaders(requestHeaders(path))).toBe(Action.Continue);
    stream.sendRequestBody(body.slice(0, 7), { endOfStream: false });
    stream.sendRequestBody(body.slice(7));

    const forwarded = stream.forwardedRequest!;
    expect(forwarded.ended).toBe(true);
    expect(forwarded.headers.entries()).toEqual(requestHeaders(path));
    expect(forwarded.bodyText).toBe(body);

    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    const responseHeaders: [string, string][] = [[":status", "200"], ["content-type", "application/json"], ["x-hexr-expires-at", String(issued.expiresAt)]];
    stream.sendResponseHeaders(responseHeaders);
    stream.sendResponseBody(issued.body);
    const response = stream.response!;
    expect(response.source).toBe("upstream");
    expect(response.headers.entries()).toEqual(responseHeaders);
    expect(response.bodyText).toBe(issued.body);
    expect(stream.state).toBe("complete");

    expect(host.httpCalls).toEqual([]);
    expect(credentialEntries(host)).toEqual([]);
    expect(host.metrics.all().filter((metric) => metric.value > 0)).toEqual([]);
  });

  it("passes a GET without body through", () => {
    const { vm } = startFilter();
    const stream = vm.newHttpStream();
    expect(stream.sendRequestHeaders(requestHeaders("/metrics", "GET"), { endOfStream: true })).toBe(Action.Continue);
    expect(stream.forwardedRequest?.ended).toBe(true);
    expect(stream.forwardedRequest?.headers.entries()).toEqual(requestHeaders("/metrics", "GET"));
  });
});
