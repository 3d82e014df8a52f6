import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { DEFAULT_SIDECAR_SPIFFE_ID, INJECTOR_SPIFFE_ID, ensureDevIdentity, issueX509Svid, mintJwtSvid, type DevIdentityPaths } from "./dev-identity.ts";

let dir: string;
beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "hexr-dev-identity-"))));
afterEach(() => rm(dir, { recursive: true, force: true }));

const AGENT = "spiffe://hexr.local/agent/acme-corp/data-pipeline/main";
const certificate = async (file: string) => new X509Certificate(await readFile(file));

async function expectIssuedByCa(paths: DevIdentityPaths, certFile: string, keyFile: string) {
  const [ca, cert] = await Promise.all([certificate(paths.ca), certificate(certFile)]);
  expect(cert.checkIssued(ca)).toBe(true);
  expect(cert.verify(ca.publicKey)).toBe(true);
  expect(cert.checkPrivateKey(createPrivateKey(await readFile(keyFile)))).toBe(true);
  expect(cert.ca).toBe(false);
  return cert;
}

describe("ensureDevIdentity", () => {
  it("generates the JWKS, the signing key, a CA and the three service certificates", async () => {
    const paths = await ensureDevIdentity(dir);
    expect(paths).toEqual({
      dir,
      jwks: path.join(dir, "jwks.json"),
      signingKey: path.join(dir, "jwt-signing-key.pem"),
      ca: path.join(dir, "ca.pem"),
      caKey: path.join(dir, "ca-key.pem"),
      injectorCert: path.join(dir, "injector.pem"),
      injectorKey: path.join(dir, "injector-key.pem"),
      sidecarCert: path.join(dir, "sidecar.pem"),
      sidecarKey: path.join(dir, "sidecar-key.pem"),
      listenerCert: path.join(dir, "listener.pem"),
      listenerKey: path.join(dir, "listener-key.pem"),
    });

    const ca = await certificate(paths.ca);
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    const injector = await expectIssuedByCa(paths, paths.injectorCert, paths.injectorKey);
    expect(injector.subjectAltName).toBe(`URI:${INJECTOR_SPIFFE_ID}, DNS:localhost, IP Address:127.0.0.1`);
    const sidecar = await expectIssuedByCa(paths, paths.sidecarCert, paths.sidecarKey);
    expect(sidecar.subjectAltName).toBe(`URI:${DEFAULT_SIDECAR_SPIFFE_ID}`);
    expect(DEFAULT_SIDECAR_SPIFFE_ID).toBe("spiffe://hexr.local/sidecar/acme-corp/dev-pod");
    const listener = await expectIssuedByCa(paths, paths.listenerCert, paths.listenerKey);
    expect(listener.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1");
  });

  it("writes a standard JWKS with the public key only", async () => {
    const paths = await ensureDevIdentity(dir);
    const jwks = JSON.parse(await readFile(paths.jwks, "utf8"));
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toEqual({ kty: "EC", crv: "P-256", x: expect.any(String), y: expect.any(String), kid: expect.any(String), alg: "ES256", use: "sig" });
  });

  it("is idempotent and safe to call concurrently", async () => {
    const results = await Promise.all([1, 2, 3, 4].map(() => ensureDevIdentity(dir)));
    const paths = results[0];
    const snapshot = async () => Promise.all([paths.jwks, paths.ca, paths.injectorCert, paths.sidecarCert].map((file) => readFile(file, "utf8")));
    const first = await snapshot();
    await ensureDevIdentity(dir);
    expect(await snapshot()).toEqual(first);
    await expectIssuedByCa(paths, paths.sidecarCert, paths.sidecarKey);
  });

  it("regenerates material that is about to expire", async () => {
    const paths = await ensureDevIdentity(dir);
    const caBefore = await readFile(paths.ca, "utf8");
    await writeFile(path.join(dir, "manifest.json"), JSON.stringify({ version: 1, notAfter: new Date(Date.now() + 60_000).toISOString() }));
    await ensureDevIdentity(dir);
    expect(await readFile(paths.ca, "utf8")).not.toBe(caBefore);
  });
});

describe("mintJwtSvid", () => {
  it("mints an ES256 JWT-SVID the JWKS verifies, with the dev issuer, audience and a 1 h lifetime", async () => {
    const token = await mintJwtSvid(AGENT, { dir });
    const jwks = JSON.parse(await readFile(path.join(dir, "jwks.json"), "utf8"));
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), { audience: "hexr-credential-injector", issuer: "https://oidc.hexr.local" });
    expect(payload.sub).toBe(AGENT);
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(protectedHeader).toEqual({ alg: "ES256", kid: jwks.keys[0].kid, typ: "JWT" });
  });

  it("takes an audience, a lifetime and an issue time", async () => {
    const token = await mintJwtSvid(AGENT, { dir, audience: "other", ttlSeconds: 60, issuedAt: 1_000_000 });
    const payload = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
    expect(payload).toMatchObject({ aud: "other", iat: 1_000_000, exp: 1_000_060 });
    expect(decodeProtectedHeader(token).alg).toBe("ES256");
  });

  it("refuses something that is not a SPIFFE ID", async () => {
    await expect(mintJwtSvid("acme-corp/data-pipeline", { dir })).rejects.toThrow('not a valid SPIFFE ID: "acme-corp/data-pipeline"');
  });
});

describe("issueX509Svid", () => {
  it("issues an X.509-SVID with the SPIFFE ID as its only URI SAN, and reuses it", async () => {
    const svid = await issueX509Svid(AGENT, dir);
    const paths = await ensureDevIdentity(dir);
    const cert = await expectIssuedByCa(paths, svid.cert, svid.key);
    expect(cert.subjectAltName).toBe(`URI:${AGENT}`);
    const again = await issueX509Svid(AGENT, dir);
    expect(again).toEqual(svid);
    expect(await readFile(again.cert, "utf8")).toBe(await readFile(svid.cert, "utf8"));
    const other = await issueX509Svid("spiffe://hexr.local/agent/acme-corp/data-pipeline/writer", dir);
    expect(other.cert).not.toBe(svid.cert);
  });

  it("refuses an invalid SPIFFE ID", async () => {
    await expect(issueX509Svid("spiffe://hexr.local/agent/../etc", dir)).rejects.toThrow("not a valid SPIFFE ID");
  });
});
