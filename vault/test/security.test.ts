// Who may reach the vault and what a caller can make it believe: mTLS from the trust bundle only,
// sidecars asserting only their own tenant's agents, forwarded JWT-SVIDs verified against the
// header identity, the audit endpoints for admins with their own token; and what a stolen
// database row is worth: a ciphertext moved to another row does not decrypt, and the failure is a
// 503 without the value, audited.
import { request } from "node:https";
import { copyFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, importPKCS8 } from "jose";
import {
  ADMIN, agentId, engineFixture, expectError, GLOBEX_AGENT, RESEARCHER, SIDECAR_ACME, SIDECAR_GLOBEX, SIDECAR_PLATFORM, startTestVault, STRANGER,
  tempDir, testIdentity, UNTRUSTED_IDENTITY_DIR, vaultConfig, WRITER, type EngineFixture, type TestIdentity, type TestVault, type VaultClient,
} from "./helpers.ts";
import { DEV_AUDIENCE, DEV_ISSUER, ensureDevIdentity } from "../../support/dev-identity.ts";

const FEDERATED_SIDECAR = "spiffe://hexr.local/sidecar/federation/pod-1";

describe("the vault's callers and identities", () => {
  let fixture: EngineFixture;
  let store: Record<string, unknown>;
  let id: TestIdentity;
  let vault: TestVault;
  let acme: VaultClient;
  const keys = tempDir();

  beforeAll(async () => {
    id = await testIdentity();
    fixture = engineFixture("sqlite");
    store = await fixture.freshStore();
    const config = vaultConfig(id, store, keys.dir, { limits: { max_secrets_per_namespace: 3 }, trust_domains: ["hexr.local", "partner.example"] });
    // A federated sidecar: it speaks for acme-corp's agents of the partner trust domain.
    (config.caller_rules as unknown[]).push({ spiffe_id: FEDERATED_SIDECAR, tenants: ["acme-corp"], trust_domains: ["partner.example"] });
    vault = await startTestVault(config);
    acme = await vault.client(SIDECAR_ACME);
    await acme.put("ACME_KEY", "acme-secret-value");
  });

  afterAll(async () => {
    await vault?.close();
    await fixture?.close();
    keys.remove();
  });

  it("refuses a client certificate from a CA outside the trust bundle, and a client without one, at the handshake", async () => {
    const untrusted = await vault.client(SIDECAR_ACME, { untrusted: true });
    await expect(untrusted.get("ACME_KEY")).rejects.toThrow();
    const anonymous = new Promise((resolve, reject) => {
      const req = request(`${vault.url}/v1/secrets/ACME_KEY`, { ca: readFileSync(id.paths.ca), checkServerIdentity: () => undefined }, resolve);
      req.on("error", reject);
      req.end();
    });
    await expect(anonymous).rejects.toThrow();
  });

  it("refuses a caller no rule lists (403), whoever it names", async () => {
    const stranger = await vault.client(STRANGER);
    expectError(await stranger.get("ACME_KEY"), 403, "CredentialError", ["acme-secret-value"]);
    // An agent's own X.509-SVID is no sidecar's: agents reach the vault only through their sidecar.
    const agentDirect = await vault.client(RESEARCHER);
    expectError(await agentDirect.get("ACME_KEY", { token: true }), 403, "CredentialError");
  });

  it("lets a sidecar of tenant A assert only tenant A's agents: tenant B is 403", async () => {
    const globexSidecar = await vault.client(SIDECAR_GLOBEX);
    const forged = await globexSidecar.get("ACME_KEY", { as: RESEARCHER });
    expect(expectError(forged, 403, "CredentialError", ["acme-secret-value"]).message).toMatch(/tenant acme-corp/);
    // Even with the acme agent's real token: the globex sidecar may not relay it.
    expectError(await globexSidecar.get("ACME_KEY", { as: RESEARCHER, token: true }), 403, "CredentialError");
    expectError(await acme.get("ACME_KEY", { as: GLOBEX_AGENT }), 403, "CredentialError");
    expectError(await globexSidecar.put("PLANTED", "x", { as: RESEARCHER }), 403, "CredentialError");
    expectError(await acme.get("PLANTED"), 404, "BadRequest");
  });

  it("lets a sidecar assert its own trust domain's agents, others only when its rule names them", async () => {
    const partnerAgent = "spiffe://partner.example/agent/acme-corp/my-agent/researcher";
    expectError(await acme.put("PARTNER", "partner-value", { as: partnerAgent }), 403, "CredentialError");
    const federated = await vault.client(FEDERATED_SIDECAR);
    expect((await federated.put("PARTNER", "partner-value", { as: partnerAgent })).status).toBe(201);
    expectError(await federated.get("ACME_KEY", { as: RESEARCHER }), 403, "CredentialError");
    expectError(await federated.get("PARTNER", { as: "spiffe://partner.example/agent/globex/my-agent/researcher" }), 403, "CredentialError");
    // Another trust domain's agent of the same tenant and name is another namespace.
    expectError(await acme.get("PARTNER"), 404, "BadRequest");
  });

  it("verifies a forwarded JWT-SVID and requires its subject to be the asserted identity", async () => {
    expect((await acme.get("ACME_KEY", { token: true })).json().value).toBe("acme-secret-value");
    const writerToken = await id.token(WRITER);
    expectError(await acme.get("ACME_KEY", { as: RESEARCHER, token: writerToken }), 401, "AuthenticationError");
    const otherAudience = await id.token(RESEARCHER, { audience: "someone-else" });
    expectError(await acme.get("ACME_KEY", { token: otherAudience }), 401, "AuthenticationError");
    const expired = await id.token(RESEARCHER, { issuedAt: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 60 });
    expectError(await acme.get("ACME_KEY", { token: expired }), 401, "AuthenticationError");
    const token = await id.token(RESEARCHER);
    const tampered = token.slice(0, -4) + (token.endsWith("AAAA") ? "BBBB" : "AAAA");
    expectError(await acme.get("ACME_KEY", { token: tampered }), 401, "AuthenticationError");
    expectError(await acme.get("ACME_KEY", { headers: { authorization: "Basic abc" } }), 401, "AuthenticationError");
    // The filter says the agent used a JWT-SVID but forwarded none.
    expectError(await acme.get("ACME_KEY", { source: "jwt" }), 401, "AuthenticationError");
    // A token signed by a key outside the bundle (another dev identity's).
    const untrusted = await ensureDevIdentity(UNTRUSTED_IDENTITY_DIR);
    const untrustedKey = await importPKCS8(readFileSync(untrusted.signingKey, "utf8"), "ES256");
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "forged" }).setSubject(RESEARCHER)
      .setAudience(DEV_AUDIENCE).setIssuer(DEV_ISSUER).setIssuedAt(now).setExpirationTime(now + 600).sign(untrustedKey);
    expectError(await acme.get("ACME_KEY", { token: forged }), 401, "AuthenticationError");
    expect(vault.logs()).not.toContain(token);
  });

  it("serves the audit log to admins with their own JWT-SVID only", async () => {
    const platform = await vault.client(SIDECAR_PLATFORM);
    const listed = await platform.call("GET", "/v1/audit?after=0&limit=5", { as: ADMIN, token: true });
    expect(listed.status).toBe(200);
    expect(listed.headers["cache-control"]).toBe("no-store");
    expect(listed.json().records).toHaveLength(5);
    expect(listed.json().next).toBe(5);
    expect((await platform.call("GET", "/v1/audit/verify", { as: ADMIN, token: true })).json()).toMatchObject({ ok: true });
    // The admin's identity on the sidecar's word alone is not enough.
    expectError(await platform.call("GET", "/v1/audit", { as: ADMIN }), 401, "AuthenticationError");
    expectError(await acme.call("GET", "/v1/audit", { token: true }), 403, "CredentialError");
    expectError(await acme.call("GET", "/v1/audit/verify", { token: true }), 403, "CredentialError");
    expectError(await platform.call("GET", "/v1/audit?limit=100000", { as: ADMIN, token: true }), 400, "BadRequest");
    expect(listed.text).not.toContain("acme-secret-value");
  });

  it("caps the secrets of one agent (limits.max_secrets_per_namespace): 403, nothing stored", async () => {
    const as = agentId("acme-corp", "hoarder", "main");
    for (const name of ["A", "B", "C"]) expect((await acme.put(name, "v", { as })).status).toBe(201);
    const full = expectError(await acme.put("D", "v", { as }), 403, "CredentialError");
    expect(full.message).toMatch(/maximum of 3/);
    expect((await acme.put("A", "v2", { as })).status).toBe(201); // a new version is no new secret
    expectError(await acme.get("D", { as }), 404, "BadRequest");
    await acme.delete("C", { as });
    expect((await acme.put("D", "v", { as })).status).toBe(201);
  });

  it("records who asked for every answer, refused ones included, and never a value", async () => {
    const stranger = await vault.client(STRANGER);
    await stranger.get("ACME_KEY");
    await acme.get("NOPE", { as: null });
    const records = await fixture.sql<{ spiffe_id: string; caller: string; operation: string; name: string | null; status: number }>(
      store, "SELECT spiffe_id, caller, operation, name, status FROM audit ORDER BY seq DESC LIMIT 2",
    );
    expect(records).toEqual([
      { spiffe_id: SIDECAR_ACME, caller: SIDECAR_ACME, operation: "get", name: "NOPE", status: 401 },
      { spiffe_id: STRANGER, caller: STRANGER, operation: "get", name: "ACME_KEY", status: 403 },
    ]);
    const everything = JSON.stringify(await fixture.sql(store, "SELECT * FROM audit"));
    expect(everything).not.toContain("acme-secret-value");
    expect(vault.logs()).not.toContain("acme-secret-value");
  });
});

describe("a ciphertext moved to another row", () => {
  let fixture: EngineFixture;
  let store: Record<string, unknown>;
  let vault: TestVault;
  let acme: VaultClient;
  const keys = tempDir();

  beforeAll(async () => {
    fixture = engineFixture("sqlite");
    store = await fixture.freshStore();
    vault = await startTestVault(vaultConfig(await testIdentity(), store, keys.dir));
    acme = await vault.client(SIDECAR_ACME);
  });

  afterAll(async () => {
    await vault?.close();
    await fixture?.close();
    keys.remove();
  });

  const copy = (from: { agent: string; name: string; version: number }, to: { agent: string; name: string; version: number }) =>
    fixture.sql(
      store,
      `UPDATE secret_versions SET nonce = (SELECT nonce FROM secret_versions WHERE agent = $1 AND name = $2 AND version = $3),
         ciphertext = (SELECT ciphertext FROM secret_versions WHERE agent = $1 AND name = $2 AND version = $3),
         wrapped_dek = (SELECT wrapped_dek FROM secret_versions WHERE agent = $1 AND name = $2 AND version = $3)
       WHERE agent = $4 AND name = $5 AND version = $6`,
      [from.agent, from.name, from.version, to.agent, to.name, to.version],
    );

  it("fails to decrypt under another agent, name or version: 503 without the value, audited", async () => {
    const victim = agentId("acme-corp", "victim", "main");
    const thief = agentId("acme-corp", "thief", "main");
    await acme.put("STRIPE_KEY", "sk_live_victim_value", { as: victim });
    await acme.put("STRIPE_KEY", "sk_live_thief_value", { as: thief });
    await acme.put("OTHER_NAME", "thief-other-value", { as: thief });
    await acme.put("OTHER_NAME", "thief-other-value-2", { as: thief });
    await copy({ agent: "victim", name: "STRIPE_KEY", version: 1 }, { agent: "thief", name: "STRIPE_KEY", version: 1 });
    await copy({ agent: "victim", name: "STRIPE_KEY", version: 1 }, { agent: "thief", name: "OTHER_NAME", version: 2 });
    await copy({ agent: "thief", name: "OTHER_NAME", version: 1 }, { agent: "thief", name: "OTHER_NAME", version: 1 }); // itself: still fine

    const moved = await acme.get("STRIPE_KEY", { as: thief });
    const error = expectError(moved, 503, "CredentialError", ["sk_live_victim_value", "sk_live_thief_value"]);
    expect(error.message).toMatch(/STRIPE_KEY.*integrity/);
    expectError(await acme.get("OTHER_NAME", { as: thief }), 503, "CredentialError", ["sk_live_victim_value"]);
    expectError(await acme.batch(["STRIPE_KEY"], { as: thief }), 503, "CredentialError", ["sk_live_victim_value"]);
    expect((await acme.get("OTHER_NAME", { as: thief, version: 1 })).json().value).toBe("thief-other-value");
    expect((await acme.get("STRIPE_KEY", { as: victim })).json().value).toBe("sk_live_victim_value");

    const audited = await fixture.sql<{ spiffe_id: string; name: string; version: number; status: number }>(
      store, "SELECT spiffe_id, name, version, status FROM audit WHERE status = 503 ORDER BY seq",
    );
    expect(audited).toEqual([
      { spiffe_id: thief, name: "STRIPE_KEY", version: 1, status: 503 },
      { spiffe_id: thief, name: "OTHER_NAME", version: 2, status: 503 },
      { spiffe_id: thief, name: "STRIPE_KEY", version: 1, status: 503 },
    ]);
    expect(vault.logs()).toMatch(/failed its integrity check/);
    expect(vault.logs()).not.toMatch(/sk_live_/);
  });

  it("fails to decrypt under another scope", async () => {
    await acme.put("SCOPED", "scoped-value", { scope: "researcher" });
    // Pretend the secret was always agent-level: its ciphertext is bound to "researcher".
    await fixture.sql(store, "UPDATE secrets SET scope = '*' WHERE name = 'SCOPED'");
    await fixture.sql(store, "UPDATE secret_versions SET scope = '*' WHERE name = 'SCOPED'");
    expectError(await acme.get("SCOPED", { as: WRITER }), 503, "CredentialError", ["scoped-value"]);
  });
});

describe("the vault's own certificate", () => {
  it("is read again when SPIRE rotates it: new connections get the new one, without a restart", async () => {
    const id = await testIdentity();
    const dir = tempDir();
    const fixture = engineFixture("sqlite");
    const rotated = await id.svid("spiffe://hexr.local/hexr-system/vault-rotated");
    const cert = path.join(dir.dir, "vault.pem");
    const key = path.join(dir.dir, "vault-key.pem");
    copyFileSync(id.vault.cert, cert);
    copyFileSync(id.vault.key, key);
    const config = vaultConfig(id, await fixture.freshStore(), dir.dir);
    const vault = await startTestVault({ ...config, tls: { cert_file: cert, key_file: key, client_ca_file: id.paths.ca } }, { tlsReloadIntervalMs: 50 });
    const sidecar = await id.svid(SIDECAR_ACME);
    const served = () =>
      new Promise<string | undefined>((resolve, reject) => {
        const socket = connect({ port: vault.port, host: "127.0.0.1", ca: readFileSync(id.paths.ca), cert: readFileSync(sidecar.cert), key: readFileSync(sidecar.key), checkServerIdentity: () => undefined }, () => {
          resolve(socket.getPeerCertificate().subjectaltname);
          socket.destroy();
        });
        socket.on("error", reject);
      });
    try {
      expect(await served()).toBe("URI:spiffe://hexr.local/hexr-system/vault");
      copyFileSync(rotated.key, key);
      copyFileSync(rotated.cert, cert);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await served()).toBe("URI:spiffe://hexr.local/hexr-system/vault-rotated");
    } finally {
      await vault.close();
      await fixture.close();
      dir.remove();
    }
  });
});
