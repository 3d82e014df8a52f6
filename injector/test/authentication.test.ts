// Authentication: the injector re-verifies the JWT-SVID, ties it to the identity the filter
// resolved, and checks that the mTLS peer may relay for that identity's tenant.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, UnsecuredJWT, generateKeyPair } from "jose";
import { issueX509Svid } from "../../support/dev-identity.ts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { startOpa, type OpaServer } from "../../support/opa.ts";
import { freePort } from "../../support/processes.ts";
import {
  ANALYST_ID, DEFAULT_ROLE_ARN, baseConfig, filterHeaders, send, sidecarTls, signedByDevKey, startCaptured, testIdentity,
  type CapturedInjector, type ClientTls, type TestIdentity,
} from "./helpers.ts";

let identity: TestIdentity;
let opa: OpaServer;
let moto: MotoServer;
let injector: CapturedInjector;
let tls: ClientTls;
let kid: string;

beforeAll(async () => {
  identity = await testIdentity();
  [opa, moto] = await Promise.all([startOpa(), startMoto()]);
  injector = await startCaptured({
    ...baseConfig(identity, opa),
    aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
  });
  tls = await sidecarTls(identity);
  kid = JSON.parse(await readFile(identity.paths.jwks, "utf8")).keys[0].kid;
});

afterAll(async () => {
  await injector?.close();
  await Promise.all([opa?.stop(), moto?.stop()]);
  await identity?.remove();
});

const body = JSON.stringify({ service: "aws_s3" });

function post(headers: Record<string, string>, client: ClientTls = tls) {
  return send(injector.url, { headers, body, tls: client });
}

function expectUnauthenticated(reply: Awaited<ReturnType<typeof post>>, message: string) {
  expect(reply.status).toBe(401);
  expect(reply.headers["content-type"]).toBe("application/json");
  expect(reply.json).toEqual({ error: { type: "AuthenticationError", message } });
}

describe("JWT-SVID verification", () => {
  it("accepts a valid JWT-SVID for the identity the filter resolved", async () => {
    const reply = await post(filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID)));
    expect(reply.status).toBe(200);
  });

  it("rejects a request without a bearer JWT-SVID", async () => {
    const { authorization: _, ...headers } = filterHeaders(ANALYST_ID, "unused");
    expectUnauthenticated(await post(headers), "a JWT-SVID is required in Authorization: Bearer");
    const basic = filterHeaders(ANALYST_ID, "unused", { authorization: "Basic dXNlcjpwYXNz" });
    expectUnauthenticated(await post(basic), "a JWT-SVID is required in Authorization: Bearer");
  });

  it("rejects an expired JWT-SVID", async () => {
    const expired = await identity.mint(ANALYST_ID, { issuedAt: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 3600 });
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, expired)), "JWT-SVID has expired");
  });

  it("rejects a JWT-SVID older than jwt.max_token_age_seconds, or without iat, when that is set", async () => {
    const aged = await startCaptured({
      ...baseConfig(identity, opa),
      jwt: { jwks_file: identity.paths.jwks, audience: ["hexr-credential-injector"], issuer: "https://oidc.hexr.local", max_token_age_seconds: 600 },
      aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    });
    try {
      const ask = (token: string) => send(aged.url, { headers: filterHeaders(ANALYST_ID, token), body, tls });
      // Issued 20 minutes ago and still valid for 40: older than the age any token of the trust domain reaches.
      const old = await identity.mint(ANALYST_ID, { issuedAt: Math.floor(Date.now() / 1000) - 1200, ttlSeconds: 3600 });
      expectUnauthenticated(await ask(old), "JWT-SVID is older than the accepted token age");
      expectUnauthenticated(await ask(await signedByDevKey(identity, { iat: undefined })), "JWT-SVID issued-at time is not accepted");
      expect((await ask(await identity.mint(ANALYST_ID, { ttlSeconds: 300 }))).status).toBe(200);
      // Without the setting, the old token is fine (it has not expired).
      expect((await post(filterHeaders(ANALYST_ID, old))).status).toBe(200);
    } finally {
      await aged.close();
    }
  });

  it("rejects a forged JWT-SVID: right kid, wrong key", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ sub: ANALYST_ID, aud: "hexr-credential-injector", iss: "https://oidc.hexr.local", exp: now + 600 })
      .setProtectedHeader({ alg: "ES256", kid })
      .sign(privateKey);
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, forged)), "JWT-SVID signature is not valid");
  });

  it("rejects a JWT-SVID whose signature was tampered with", async () => {
    const [header, payload, signature] = (await identity.mint(ANALYST_ID)).split(".");
    const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, `${header}.${payload}.${flipped}`)), "JWT-SVID signature is not valid");
  });

  it("rejects a key outside the trust bundle, an unsigned token and an HMAC token", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const unknownKid = await new SignJWT({ sub: ANALYST_ID, aud: "hexr-credential-injector", exp: Math.floor(Date.now() / 1000) + 600 })
      .setProtectedHeader({ alg: "ES256", kid: "not-in-the-bundle" })
      .sign(privateKey);
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, unknownKid)), "JWT-SVID is signed by a key outside the trust bundle");

    // alg "none"; a dummy signature part so that it gets past the bearer syntax check to jose
    const unsigned = new UnsecuredJWT({ sub: ANALYST_ID, aud: "hexr-credential-injector" }).setExpirationTime("10m").encode() + "x";
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, unsigned)), "JWT-SVID signing algorithm is not allowed");

    const hmac = await new SignJWT({ sub: ANALYST_ID, aud: "hexr-credential-injector", exp: Math.floor(Date.now() / 1000) + 600 })
      .setProtectedHeader({ alg: "HS256", kid })
      .sign(new TextEncoder().encode("a-shared-secret-an-attacker-guessed"));
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, hmac)), "JWT-SVID signing algorithm is not allowed");
  });

  it("rejects a JWT-SVID for another audience, or from another issuer", async () => {
    const otherAudience = await identity.mint(ANALYST_ID, { audience: "some-other-service" });
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, otherAudience)), "JWT-SVID audience is not accepted");
    const otherIssuer = await signedByDevKey(identity, { iss: "https://evil.example" });
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, otherIssuer)), "JWT-SVID issuer is not accepted");
  });

  it("rejects a subject that is not an agent SPIFFE ID, or from an untrusted trust domain", async () => {
    const sidecar = await signedByDevKey(identity, { sub: "spiffe://hexr.local/sidecar/acme-corp/dev-pod" });
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, sidecar)), "JWT-SVID subject is not an agent SPIFFE ID");
    const foreignId = "spiffe://evil.example/agent/acme-corp/research-analyst/main";
    const foreign = await signedByDevKey(identity, { sub: foreignId });
    expectUnauthenticated(await post(filterHeaders(foreignId, foreign)), "JWT-SVID trust domain evil.example is not trusted");
  });

  it("never echoes the token in an error body or a log line", async () => {
    const expired = await identity.mint(ANALYST_ID, { issuedAt: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 3600 });
    const reply = await post(filterHeaders(ANALYST_ID, expired));
    expect(reply.body).not.toContain(expired.split(".")[1]);
    expect(injector.logText()).not.toContain(expired.split(".")[1]);
  });
});

describe("a trust bundle fetched from a URL", () => {
  it("verifies against a JWKS served over HTTP, and answers 503 while it cannot be fetched", async () => {
    const jwks = await readFile(identity.paths.jwks, "utf8");
    const bundleServer = createServer((_, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(jwks);
    });
    await new Promise<void>((resolve) => bundleServer.listen(0, "127.0.0.1", resolve));
    const jwksUrl = `http://127.0.0.1:${(bundleServer.address() as { port: number }).port}/keys`;
    const config = (url: string) => ({
      ...baseConfig(identity, opa),
      jwt: { jwks_url: url, audience: ["hexr-credential-injector"] },
      aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    });
    const fromUrl = await startCaptured(config(jwksUrl));
    const unreachable = await startCaptured(config(`http://127.0.0.1:${await freePort()}/keys`));
    try {
      const headers = filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID));
      expect((await send(fromUrl.url, { headers, body, tls })).status).toBe(200);
      const reply = await send(unreachable.url, { headers, body, tls });
      expect(reply.status).toBe(503);
      expect(reply.json).toEqual({ error: { type: "CredentialError", message: "the JWT-SVID trust bundle is unavailable" } });
    } finally {
      await Promise.all([fromUrl.close(), unreachable.close()]);
      await new Promise((resolve) => bundleServer.close(resolve));
    }
  });
});

describe("the identity the filter resolved", () => {
  it("rejects a JWT-SVID whose subject differs from x-hexr-spiffe-id", async () => {
    const otherAgent = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main";
    const reply = await post(filterHeaders(otherAgent, await identity.mint(ANALYST_ID)));
    expectUnauthenticated(reply, "JWT-SVID subject does not match x-hexr-spiffe-id");
  });

  it("requires x-hexr-spiffe-id", async () => {
    const { "x-hexr-spiffe-id": _, ...headers } = filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID));
    expectUnauthenticated(await post(headers), "x-hexr-spiffe-id is required");
  });

  it("rejects tenant, agent or role headers that disagree with the SPIFFE ID", async () => {
    const token = await identity.mint(ANALYST_ID);
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, token, { "x-hexr-tenant": "globex" })), "x-hexr-tenant does not match the SPIFFE ID");
    expectUnauthenticated(await post(filterHeaders(ANALYST_ID, token, { "x-hexr-role": "writer" })), "x-hexr-role does not match the SPIFFE ID");
  });
});

describe("the mTLS caller", () => {
  it("rejects a sidecar of another tenant relaying for this agent", async () => {
    const svid = await issueX509Svid("spiffe://hexr.local/sidecar/globex/pod-7", identity.paths.dir);
    const reply = await post(filterHeaders(ANALYST_ID, await identity.mint(ANALYST_ID)), await sidecarTls(identity, svid.cert, svid.key));
    expectUnauthenticated(reply, "caller spiffe://hexr.local/sidecar/globex/pod-7 may not request credentials for tenant acme-corp");
  });

  it("accepts a caller a configured rule allows for the tenant", async () => {
    const withRule = await startCaptured({
      ...baseConfig(identity, opa),
      caller_rules: [{ spiffe_id: "spiffe://hexr.local/hexr-system/*", tenants: ["acme-corp"] }],
      aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } },
    });
    try {
      const gateway = await issueX509Svid("spiffe://hexr.local/hexr-system/gateway", identity.paths.dir);
      const client = await sidecarTls(identity, gateway.cert, gateway.key);
      const token = await identity.mint(ANALYST_ID);
      expect((await send(withRule.url, { headers: filterHeaders(ANALYST_ID, token), body, tls: client })).status).toBe(200);
      // the same caller without the rule
      expect((await post(filterHeaders(ANALYST_ID, token), client)).status).toBe(401);
    } finally {
      await withRule.close();
    }
  });

  it("serves plain HTTP without a caller check when TLS is not configured (loopback development)", async () => {
    const plain = await startCaptured({ ...baseConfig(identity, opa), tls: null, aws: { sts_endpoint: moto.url, role_arns: { "*": DEFAULT_ROLE_ARN } } });
    try {
      expect(plain.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const token = await identity.mint(ANALYST_ID);
      expect((await send(plain.url, { headers: filterHeaders(ANALYST_ID, token), body })).status).toBe(200);
      expect((await send(plain.url, { headers: filterHeaders(ANALYST_ID, "a.b.c"), body })).status).toBe(401);
    } finally {
      await plain.close();
    }
  });

  it("refuses the TLS handshake without a client certificate, or with one from another CA", async () => {
    const token = await identity.mint(ANALYST_ID);
    await expect(post(filterHeaders(ANALYST_ID, token), { ca: tls.ca })).rejects.toThrow();
    const stranger = await testIdentity();
    try {
      const strangerSidecar = { ...(await sidecarTls(stranger)), ca: tls.ca };
      await expect(post(filterHeaders(ANALYST_ID, token), strangerSidecar)).rejects.toThrow();
    } finally {
      await stranger.remove();
    }
  });
});
