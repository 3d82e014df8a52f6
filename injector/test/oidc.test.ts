// The injector as the OIDC issuer the clouds trust: its discovery document and JWKS (on a listener
// of their own, no client certificate), its signing keys (generated in development, strict in
// production, rotated with an overlap), the tokens it mints, and the publishing CLI.
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { projectRoot } from "../../support/tools.ts";
import { ConfigError, parseConfig } from "../config.ts";
import { ExchangeError } from "../errors.ts";
import { CloudTokenIssuer } from "../oidc/cloud-tokens.ts";
import { discoveryDocuments, writeDiscoveryDocuments } from "../oidc/discovery.ts";
import { OVERLAP_MARGIN_SECONDS, SigningKeyStore, stamp } from "../oidc/signing-keys.ts";
import type { InjectorConfigInput } from "../server.ts";
import {
  OIDC_ISSUER, PIPELINE_ID, baseConfig, publishedJwks, send, sidecarTls, startCaptured, testIdentity, verifyAgainstPublishedJwks,
  type CapturedInjector, type TestIdentity,
} from "./helpers.ts";

const OPA_NOT_USED = "http://127.0.0.1:9";
const LIFETIME = 300;
const tsx = path.join(projectRoot, "node_modules", ".bin", "tsx");

let identity: TestIdentity;
const started: CapturedInjector[] = [];
const folders: string[] = [];

beforeAll(async () => {
  identity = await testIdentity();
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((injector) => injector.close()));
});

afterAll(async () => {
  await identity?.remove();
  await Promise.all(folders.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function folder(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-oidc-test-"));
  folders.push(dir);
  return dir;
}

/** An injector that is only an issuer (no cloud configured), with its keys in `keysDir` and a movable clock. */
async function issuer(keysDir: string, options: { generate?: boolean; clock?: () => number; oidc?: Record<string, unknown> } = {}) {
  const base = baseConfig(identity, OPA_NOT_USED);
  const config: InjectorConfigInput = { ...base, oidc: { ...base.oidc, signing_keys_dir: keysDir, generate_key: options.generate ?? true, ...options.oidc } };
  const injector = await startCaptured(config, { clock: options.clock });
  started.push(injector);
  return injector;
}

describe("discovery documents", () => {
  let injector: CapturedInjector;
  beforeAll(async () => {
    injector = await startCaptured(baseConfig(identity, OPA_NOT_USED));
  });
  afterAll(async () => {
    await injector?.close();
  });

  it("serves the OpenID configuration AWS, GCP and Entra ID read, over plain HTTP without a client certificate", async () => {
    const response = await fetch(`${injector.discoveryUrl}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("cache-control")).toBe("public, max-age=300");
    expect(await response.json()).toEqual({
      issuer: OIDC_ISSUER,
      jwks_uri: `${OIDC_ISSUER}/keys`,
      response_types_supported: ["id_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["RS256"],
      claims_supported: ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
    });
  });

  it("serves the JWKS with public RSA members only", async () => {
    const response = await fetch(`${injector.discoveryUrl}/keys`);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("public, max-age=300");
    const { keys } = await response.json();
    expect(keys).toHaveLength(1);
    expect(Object.keys(keys[0]).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
    expect(keys[0]).toMatchObject({ kty: "RSA", alg: "RS256", use: "sig", e: "AQAB" });
    expect(Buffer.from(keys[0].n, "base64url").length * 8).toBeGreaterThanOrEqual(2048);
  });

  it("answers HEAD, refuses other methods, and serves nothing else on that listener", async () => {
    const head = await fetch(`${injector.discoveryUrl}/keys`, { method: "HEAD" });
    expect([head.status, Number(head.headers.get("content-length"))]).toEqual([200, (await (await fetch(`${injector.discoveryUrl}/keys`)).text()).length]);
    const post = await fetch(`${injector.discoveryUrl}/.well-known/openid-configuration`, { method: "POST", body: "{}" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
    for (const other of ["/exchange", "/healthz", "/", "/keys/../exchange", "/.well-known/jwks.json"]) {
      const response = await fetch(`${injector.discoveryUrl}${other}`, { method: other === "/exchange" ? "POST" : "GET" });
      expect(response.status, other).toBe(404);
    }
  });

  it("leaves the exchange listener as it was: no TLS handshake without a client certificate, no discovery there", async () => {
    const ca = await readFile(identity.paths.ca, "utf8");
    await expect(send(injector.url, { method: "GET", path: "/.well-known/openid-configuration", tls: { ca } })).rejects.toThrow();
    const withCertificate = await send(injector.url, { method: "GET", path: "/.well-known/openid-configuration", tls: await sidecarTls(identity) });
    expect(withCertificate.status).toBe(404);
  });

  it("serves the documents under the issuer's path and the configured jwks_uri", async () => {
    const keysDir = await folder();
    const withPath = await issuer(keysDir, { oidc: { issuer: "https://oidc.hexr.cloud/tenants/acme", jwks_uri: "https://oidc.hexr.cloud/tenants/acme/jwks.json" } });
    const configuration = await (await fetch(`${withPath.discoveryUrl}/tenants/acme/.well-known/openid-configuration`)).json();
    expect(configuration).toMatchObject({ issuer: "https://oidc.hexr.cloud/tenants/acme", jwks_uri: "https://oidc.hexr.cloud/tenants/acme/jwks.json" });
    expect((await fetch(`${withPath.discoveryUrl}/tenants/acme/jwks.json`)).status).toBe(200);
  });
});

describe("signing keys", () => {
  it("are generated on the first start in development (mode 0600), reused after, and never logged", async () => {
    const keysDir = await folder();
    const first = await issuer(keysDir);
    const files = await readdir(keysDir);
    expect(files).toEqual([expect.stringMatching(/^\d{8}T\d{6}Z-[A-Za-z0-9_-]{8}\.pem$/)]);
    expect((await stat(path.join(keysDir, files[0]))).mode & 0o777).toBe(0o600);
    const [{ kid }] = (await publishedJwks(first.discoveryUrl!)).keys;
    await first.close();
    started.splice(0);

    const second = await issuer(keysDir);
    expect(await readdir(keysDir)).toEqual(files);
    expect((await publishedJwks(second.discoveryUrl!)).keys.map((key) => key.kid)).toEqual([kid]);

    const pem = await readFile(path.join(keysDir, files[0]), "utf8");
    const logged = first.logText() + second.logText();
    // (Besides the start-up warnings about settings this test leaves off: revocation, the OPA token.)
    expect(first.logLines().filter((line) => line.level !== 40)).toEqual([expect.objectContaining({ msg: "oidc signing key added", kid })]);
    expect(logged).not.toContain("PRIVATE KEY");
    for (const line of pem.split("\n").filter((line) => line.length > 20)) expect(logged).not.toContain(line);
  });

  it("refuse to start in production without a key, or with a key file that is not a dated RSA key", async () => {
    const empty = await folder();
    await expect(issuer(empty, { generate: false })).rejects.toThrow(
      "injector config: oidc.signing_keys_dir has no key that may sign now (add a YYYYMMDDTHHMMSSZ.pem RSA key, or set oidc.generate_key in development)",
    );
    await expect(issuer(path.join(empty, "missing"), { generate: false })).rejects.toThrow("injector config: oidc.signing_keys_dir cannot be read: ENOENT");

    const ec = await folder();
    const ecKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" });
    await writeFile(path.join(ec, "20250101T000000Z.pem"), ecKey);
    await expect(issuer(ec, { generate: false })).rejects.toThrow("injector config: oidc.signing_keys_dir: 20250101T000000Z.pem is not an RSA key of at least 2048 bits (the clouds need RS256)");

    const undated = await folder();
    await writeFile(path.join(undated, "signing.pem"), rsaPem());
    await expect(issuer(undated, { generate: false })).rejects.toThrow("injector config: oidc.signing_keys_dir: signing.pem is not named YYYYMMDDTHHMMSSZ[-label].pem|.jwk");

    const garbage = await folder();
    await writeFile(path.join(garbage, "20250101T000000Z.pem"), "not a key");
    await expect(issuer(garbage, { generate: false })).rejects.toThrow(ConfigError);
  });

  it("load an operator's key file, PEM or private JWK", async () => {
    const dir = await folder();
    const key = generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey;
    await writeFile(path.join(dir, "20250101T000000Z-from-jwk.jwk"), JSON.stringify(key.export({ format: "jwk" })), { mode: 0o600 });
    const injector = await issuer(dir, { generate: false });
    const { keys } = await publishedJwks(injector.discoveryUrl!);
    expect(keys).toHaveLength(1);
    expect(keys[0].n).toBe(key.export({ format: "jwk" }).n);
    expect(keys[0]).not.toHaveProperty("d");
  });
});

describe("key rotation", () => {
  it("signs with the newest key, keeps the previous one published until its last token has expired, then drops it", async () => {
    let now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const clock = () => now;
    const keysDir = await folder();
    await writeFile(path.join(keysDir, `${stamp(now / 1000)}-first.pem`), rsaPem(), { mode: 0o600 });
    const injector = await issuer(keysDir, { generate: false, clock });
    const keys = injector.signingKeys!;
    const tokens = new CloudTokenIssuer({ issuer: OIDC_ISSUER, token_lifetime_seconds: LIFETIME }, keys, clock);
    const kids = async () => (await publishedJwks(injector.discoveryUrl!)).keys.map((key) => key.kid);

    now += 60_000;
    const oldToken = await tokens.mint(PIPELINE_ID, "sts.amazonaws.com");
    const oldKid = decodeProtectedHeader(oldToken).kid;

    // Rotation by the method; the new key signs at once (no publish-ahead).
    const rotated = await keys.rotate({ publishAheadSeconds: 0 });
    const retiredAt = now / 1000;
    const newToken = await tokens.mint(PIPELINE_ID, "sts.amazonaws.com");
    expect(decodeProtectedHeader(newToken).kid).toBe(rotated.kid);
    expect(rotated.kid).not.toBe(oldKid);
    expect(await kids()).toEqual([rotated.kid, oldKid]);

    // During the overlap the old token still verifies against what is published.
    now = (retiredAt + LIFETIME - 1) * 1000;
    expect((await verifyAgainstPublishedJwks(oldToken, injector.discoveryUrl!, "sts.amazonaws.com", now)).sub).toBe(PIPELINE_ID);
    now = (retiredAt + LIFETIME + OVERLAP_MARGIN_SECONDS - 1) * 1000;
    expect(await kids()).toEqual([rotated.kid, oldKid]);
    expect(keys.statuses().map((status) => [status.state, status.published])).toEqual([["active", true], ["previous", true]]);

    // After it, the old key has left the JWKS: nothing it signed verifies any more.
    now = (retiredAt + LIFETIME + OVERLAP_MARGIN_SECONDS) * 1000;
    expect(await kids()).toEqual([rotated.kid]);
    const published = createLocalJWKSet((await publishedJwks(injector.discoveryUrl!)) as any);
    await expect(jwtVerify(oldToken, published, { currentDate: new Date(retiredAt * 1000) })).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(keys.statuses().map((status) => [status.state, status.published])).toEqual([["active", true], ["previous", false]]);
  });

  it("publishes a key added ahead of its time before it signs with it", async () => {
    let now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const clock = () => now;
    const keysDir = await folder();
    await writeFile(path.join(keysDir, `${stamp(now / 1000)}.pem`), rsaPem(), { mode: 0o600 });
    const injector = await issuer(keysDir, { generate: false, clock });
    const keys = injector.signingKeys!;
    const tokens = new CloudTokenIssuer({ issuer: OIDC_ISSUER, token_lifetime_seconds: LIFETIME }, keys, clock);
    const [current] = keys.statuses();

    // An operator drops in a key file dated 10 minutes ahead (the rotate CLI does the same).
    await writeFile(path.join(keysDir, `${stamp(now / 1000 + 600)}-next.pem`), rsaPem(), { mode: 0o600 });
    await keys.reload();
    const [next] = keys.statuses();
    expect(next).toMatchObject({ state: "pending", published: true });
    expect((await publishedJwks(injector.discoveryUrl!)).keys.map((key) => key.kid)).toEqual([next.kid, current.kid]);
    expect(decodeProtectedHeader(await tokens.mint(PIPELINE_ID, "aud")).kid).toBe(current.kid);

    now += 600_000;
    expect(decodeProtectedHeader(await tokens.mint(PIPELINE_ID, "aud")).kid).toBe(next.kid);
  });

  it("answers 503, not a token, when no key may sign", async () => {
    const dir = await folder();
    const keys = await SigningKeyStore.open({ signing_keys_dir: dir, generate_key: true, token_lifetime_seconds: LIFETIME });
    const tokens = new CloudTokenIssuer({ issuer: OIDC_ISSUER, token_lifetime_seconds: LIFETIME }, keys);
    await rm(path.join(dir, (await readdir(dir))[0]));
    await keys.reload();
    const failure = await tokens.mint(PIPELINE_ID, "aud").catch((error) => error);
    expect(failure).toBeInstanceOf(ExchangeError);
    expect([failure.status, failure.outcome, failure.message]).toEqual([503, "signing_key_unavailable", "the injector's OIDC signing key is unavailable"]);
  });
});

describe("publishing", () => {
  it("writes both documents to a folder, byte for byte what the listener serves", async () => {
    const keysDir = await folder();
    const injector = await issuer(keysDir);
    const out = await folder();
    const config = parseConfig(injector.config);
    const written = await writeDiscoveryDocuments(config.oidc!, injector.signingKeys!, out);
    expect(written).toEqual([path.join(out, ".well-known", "openid-configuration"), path.join(out, "keys")]);
    expect(await readFile(written[0], "utf8")).toBe(await (await fetch(`${injector.discoveryUrl}/.well-known/openid-configuration`)).text());
    expect(await readFile(written[1], "utf8")).toBe(await (await fetch(`${injector.discoveryUrl}/keys`)).text());
    expect((await discoveryDocuments(config.oidc!, injector.signingKeys!)).map((document) => document.path)).toEqual(["/.well-known/openid-configuration", "/keys"]);
  });

  it("has a CLI that adds a key ahead of its time, lists the keys and publishes the documents", async () => {
    const dir = await folder();
    const configFile = path.join(dir, "injector.json");
    await writeFile(configFile, JSON.stringify({
      jwt: { jwks_file: identity.paths.jwks },
      trust_domains: ["hexr.local"],
      opa: { url: OPA_NOT_USED },
      oidc: { issuer: OIDC_ISSUER, signing_keys_dir: "keys" },
    }));
    const run = (...args: string[]) => promisify(execFile)(tsx, [path.join(projectRoot, "injector", "oidc", "cli.ts"), ...args, "--config", configFile]);

    const first = JSON.parse((await run("rotate", "--publish-ahead", "0")).stdout);
    const second = JSON.parse((await run("rotate")).stdout); // default: published 300 s before it signs
    expect(Date.parse(second.activates_at) - Date.parse(first.activates_at)).toBeGreaterThanOrEqual(299_000);
    const listed = (await run("keys")).stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(listed.map((key) => [key.kid, key.state, key.published])).toEqual([[second.kid, "pending", true], [first.kid, "active", true]]);

    const out = path.join(dir, "site");
    expect((await run("publish", "--out", out)).stdout.trim().split("\n")).toEqual([path.join(out, ".well-known", "openid-configuration"), path.join(out, "keys")]);
    const jwks = JSON.parse(await readFile(path.join(out, "keys"), "utf8"));
    expect(jwks.keys.map((key: { kid: string }) => key.kid)).toEqual([second.kid, first.kid]);
    for (const output of [JSON.stringify(listed), JSON.stringify(jwks)]) expect(output).not.toMatch(/"d"|PRIVATE/);

    const failure = await run("publish").catch((error) => error);
    expect([failure.code, failure.stderr]).toEqual([2, expect.stringContaining("publish needs --out DIR")]);
  }, 30_000);
});

function rsaPem(): string {
  return generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
}
