// The vault door (doors/vault.ts): requests under /v1/secrets and /v1/audit go on to the vault
// with the caller's verified identity in x-hexr-spiffe-id, set by the filter alone; a request the
// filter cannot name a caller for never leaves the sidecar.

import { describe, expect, it } from "vitest";
import { Action } from "./host/index.ts";
import { AGENT, expectContractError, expectNothingOnward, jwtMetadata, mtlsPeer, startFilter } from "./support/exchange.ts";
import type { Properties } from "./host/index.ts";

const VAULT = { vault: true };

function vaultRequest(path: string, options: { method?: string; properties?: Properties; headers?: [string, string][]; body?: string } = {}) {
  const headers: [string, string][] = [
    [":method", options.method ?? (options.body ? "PUT" : "GET")],
    [":path", path],
    [":authority", "127.0.0.1:15080"],
    [":scheme", "http"],
    ...(options.headers ?? []),
  ];
  if (options.body) headers.push(["content-type", "application/json"]);
  return headers;
}

function send(path: string, options: Parameters<typeof vaultRequest>[1] & { config?: object } = {}) {
  const { vm, host } = startFilter(options.config ?? VAULT);
  const stream = vm.newHttpStream({ properties: options.properties ?? mtlsPeer(AGENT.dataPipeline) });
  const action = stream.sendRequestHeaders(vaultRequest(path, options), { endOfStream: options.body === undefined });
  if (options.body !== undefined) {
    const middle = Math.floor(options.body.length / 2);
    stream.sendRequestBody(options.body.slice(0, middle), { endOfStream: false });
    stream.sendRequestBody(options.body.slice(middle));
  }
  return { stream, action, host };
}

describe("the vault door", () => {
  it("forwards a put, body and all, naming the verified caller in headers only it sets", () => {
    const body = JSON.stringify({ value: "sk-not-a-real-key" });
    const { stream, action, host } = send("/v1/secrets/OPENAI_API_KEY?scope=main", {
      body,
      headers: [
        ["x-hexr-spiffe-id", AGENT.otherTenant],
        ["X-Hexr-Identity-Source", "static"],
        ["authorization", "Bearer the-agents-jwt"],
      ],
    });
    expect(action).toBe(Action.Continue);
    const forwarded = stream.forwardedRequest!;
    expect(forwarded.ended).toBe(true);
    expect(forwarded.bodyText).toBe(body);
    const headers = forwarded.headers.entries();
    expect(headers.filter(([name]) => name.toLowerCase().startsWith("x-hexr-"))).toEqual([
      ["x-hexr-spiffe-id", AGENT.dataPipeline],
      ["x-hexr-identity-source", "mtls"],
    ]);
    // The vault verifies the agent's JWT-SVID again: it travels on.
    expect(headers).toContainEqual(["authorization", "Bearer the-agents-jwt"]);
    expect(stream.response).toBeUndefined();
    expect(host.httpCalls).toEqual([]);
  });

  it("names a JWT-SVID's subject with source jwt", () => {
    const { stream } = send("/v1/secrets", { properties: jwtMetadata({ sub: AGENT.reporter, iss: "https://oidc.hexr.local", aud: "hexr-credential-injector" }) });
    const hexr = stream.forwardedRequest!.headers.entries().filter(([name]) => name.startsWith("x-hexr-"));
    expect(hexr).toEqual([
      ["x-hexr-spiffe-id", AGENT.reporter],
      ["x-hexr-identity-source", "jwt"],
    ]);
  });

  it.each(["/v1/secrets", "/v1/secrets/", "/v1/secrets/OPENAI_API_KEY", "/v1/secrets?x=1", "/v1/secrets/_batch", "/v1/audit", "/v1/audit/verify", "/v1/audit?after=3"])(
    "serves %s",
    (path) => {
      const { stream } = send(path);
      expect(stream.forwardedRequest!.headers.entries()).toContainEqual(["x-hexr-spiffe-id", AGENT.dataPipeline]);
    },
  );

  it.each(["/v1/secretsX", "/v1/secret", "/v1/audits", "/v2/secrets/a"])("does not serve %s: it passes through untouched", (path) => {
    const spoofed: [string, string] = ["x-hexr-spiffe-id", AGENT.otherTenant];
    const { stream } = send(path, { headers: [spoofed] });
    expect(stream.forwardedRequest!.headers.entries()).toEqual(vaultRequest(path, { headers: [spoofed] }));
  });

  it("refuses a caller it cannot name (401), two tokens (401), and forwards nothing", () => {
    const anonymous = send("/v1/secrets/X", { properties: {} });
    expectContractError(anonymous.stream, 401, "AuthenticationError");
    expectNothingOnward(anonymous.stream);
    const twoTokens = send("/v1/secrets/X", { headers: [["authorization", "Bearer a"], ["authorization", "Bearer b"]] });
    expectContractError(twoTokens.stream, 401, "AuthenticationError");
    expectNothingOnward(twoTokens.stream);
  });

  it("refuses an expired JWT-SVID and an identity of an untrusted trust domain", () => {
    const expired = send("/v1/secrets/X", { properties: jwtMetadata({ sub: AGENT.reporter, exp: 1000 }) });
    expectContractError(expired.stream, 401, "AuthenticationError");
    const foreign = send("/v1/secrets/X", { properties: mtlsPeer("spiffe://elsewhere.example/agent/acme-corp/data-pipeline/main") });
    expectContractError(foreign.stream, 401, "AuthenticationError");
    expectNothingOnward(foreign.stream);
  });

  it("refuses the listener's own identity: secrets go to a caller's own SVID only", () => {
    const { stream } = send("/v1/secrets/X", {
      config: { ...VAULT, identity_sources: ["mtls", "static"], static_spiffe_id: AGENT.reporter },
      properties: {},
    });
    expectContractError(stream, 403, "CredentialError");
    expectNothingOnward(stream);
  });

  it("is closed unless configured: the path then passes through untouched (so the sidecar has no vault route then)", () => {
    const spoofed: [string, string] = ["x-hexr-spiffe-id", AGENT.otherTenant];
    const { stream } = send("/v1/secrets/X", { config: {}, headers: [spoofed] });
    expect(stream.forwardedRequest!.headers.entries()).toEqual(vaultRequest("/v1/secrets/X", { headers: [spoofed] }));
  });
});
