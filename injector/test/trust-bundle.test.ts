import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from "jose";
import { trustBundleFromFile } from "../../spiffe/trust-bundle.ts";

let dir: string;
beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "hexr-bundle-"))));
afterEach(() => rm(dir, { recursive: true, force: true }));

async function keyPair(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid } };
}

function sign(privateKey: CryptoKey, kid: string) {
  return new SignJWT({ sub: "spiffe://hexr.local/agent/a/b/c" }).setProtectedHeader({ alg: "ES256", kid }).setExpirationTime("5m").sign(privateKey);
}

describe("JWKS trust bundle from a file", () => {
  it("reads a SPIFFE bundle: jwt-svid keys are used, x509-svid roots ignored", async () => {
    const signing = await keyPair("jwt-1");
    const x509Root = await keyPair("x509-1");
    const file = path.join(dir, "bundle.json");
    await writeFile(file, JSON.stringify({ keys: [{ ...signing.jwk, use: "jwt-svid" }, { ...x509Root.jwk, use: "x509-svid" }], spiffe_sequence: 1 }));
    const keys = trustBundleFromFile(file);
    await expect(jwtVerify(await sign(signing.privateKey, "jwt-1"), keys)).resolves.toBeDefined();
    await expect(jwtVerify(await sign(x509Root.privateKey, "x509-1"), keys)).rejects.toThrow(/no applicable key/i);
  });

  it("follows the file as keys rotate: a new key verifies, a removed one no longer does", async () => {
    const first = await keyPair("k1");
    const second = await keyPair("k2");
    const file = path.join(dir, "jwks.json");
    await writeFile(file, JSON.stringify({ keys: [first.jwk] }));
    const keys = trustBundleFromFile(file, 0);
    const signedByFirst = await sign(first.privateKey, "k1");
    await expect(jwtVerify(signedByFirst, keys)).resolves.toBeDefined();
    await writeFile(file, JSON.stringify({ keys: [first.jwk, second.jwk] }));
    await expect(jwtVerify(await sign(second.privateKey, "k2"), keys)).resolves.toBeDefined();
    await writeFile(file, JSON.stringify({ keys: [second.jwk] }));
    await expect(jwtVerify(signedByFirst, keys)).rejects.toThrow(/no applicable key/i);
  });

  it("keeps its keys while the file is half-written", async () => {
    const first = await keyPair("k1");
    const file = path.join(dir, "jwks.json");
    await writeFile(file, JSON.stringify({ keys: [first.jwk] }));
    const keys = trustBundleFromFile(file, 0);
    await writeFile(file, '{"keys": [');
    await expect(jwtVerify(await sign(first.privateKey, "k1"), keys)).resolves.toBeDefined();
  });

  it("refuses a file that is not a JWKS", async () => {
    const file = path.join(dir, "nope.json");
    await writeFile(file, JSON.stringify({ key: [] }));
    expect(() => trustBundleFromFile(file)).toThrow('is not a JWKS: no "keys" list');
  });
});
