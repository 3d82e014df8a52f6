// config.ts: defaults, and a mistake stopped at load with a message naming the field.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_MAX_BODY_BYTES, loadConfigFile, parseConfig } from "../config.ts";
import { tempDir } from "./helpers.ts";

const dir = tempDir();
afterAll(() => dir.remove());

function minimal(): Record<string, any> {
  return {
    tls: { cert_file: "vault.pem", key_file: "vault-key.pem", client_ca_file: "ca.pem" },
    trust_domains: ["hexr.local"],
    caller_rules: [{ spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/*", tenants: ["acme-corp"] }],
    jwt: { jwks_file: "jwks.json", audience: "hexr-credential-injector" },
    store: { path: "vault.db" },
    kek: { keys: [{ id: "k1", file: "k1.key" }] },
  };
}

function error(mutate: (config: Record<string, any>) => void): string {
  const config = minimal();
  mutate(config);
  try {
    parseConfig(config, "/etc/hexr");
  } catch (caught) {
    expect(caught).toBeInstanceOf(ConfigError);
    return (caught as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("the vault's config", () => {
  it("fills in defaults and resolves paths against the config's folder", () => {
    const config = parseConfig(minimal(), "/etc/hexr");
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 8445 });
    expect(config.tls.client_ca_file).toBe("/etc/hexr/ca.pem");
    expect(config.jwt).toMatchObject({ jwks_file: "/etc/hexr/jwks.json", jwks_url: null, audience: ["hexr-credential-injector"], issuer: null });
    expect(config.store).toEqual({ engine: "sqlite", path: "/etc/hexr/vault.db" });
    expect(config.kek).toEqual({ active: "k1", keys: [{ id: "k1", file: "/etc/hexr/k1.key" }], generate_missing: false, kms: null });
    expect(config.limits).toEqual({ max_body_bytes: DEFAULT_MAX_BODY_BYTES, versions_kept: 16, max_secrets_per_namespace: 10_000 });
    expect(config.admins).toEqual([]);
    expect(config.caller_rules).toEqual([{ spiffe_id: "spiffe://hexr.local/sidecar/acme-corp/*", tenants: ["acme-corp"], trust_domains: null }]);
    expect(config.log_level).toBe("info");
  });

  it("takes PostgreSQL and KMS sections", () => {
    const config = parseConfig({
      ...minimal(),
      store: { engine: "postgres", url: "postgres://hexr_vault@db.internal:5432/vault", password_file: "pg-password" },
      kek: { active: "kms", keys: [{ id: "old", file: "old.key" }, { id: "kms", kms_key_id: "alias/hexr-vault" }], kms: { region: "eu-west-1" } },
    }, "/etc/hexr");
    expect(config.store).toEqual({
      engine: "postgres", url: "postgres://hexr_vault@db.internal:5432/vault", password_file: "/etc/hexr/pg-password", ca_file: null,
      pool_size: 10, statement_timeout_ms: 5000, connect_timeout_ms: 3000,
    });
    expect(config.kek.kms).toEqual({ region: "eu-west-1", endpoint: null, timeout_ms: 3000 });
  });

  it("names the field of every mistake", () => {
    expect(error((c) => delete c.tls)).toBe("vault config: tls is required");
    expect(error((c) => (c.tls.client_ca_file = ""))).toMatch(/^vault config: tls.client_ca_file must be/);
    expect(error((c) => (c.trust_domains = []))).toMatch(/trust_domains must name/);
    expect(error((c) => (c.caller_rules = []))).toMatch(/caller_rules must have at least one rule/);
    expect(error((c) => (c.caller_rules[0].spiffe_id = "sidecar/*"))).toMatch(/caller_rules\[0\].spiffe_id must be a SPIFFE ID/);
    expect(error((c) => (c.caller_rules[0].spiffe_id = "spiffe://other.td/sidecar/*"))).toMatch(/caller_rules\[0\].spiffe_id is not in a trust domain/);
    expect(error((c) => (c.caller_rules[0].tenants = []))).toMatch(/caller_rules\[0\].tenants must name/);
    expect(error((c) => delete c.caller_rules[0].tenants)).toMatch(/caller_rules\[0\].tenants is required/);
    expect(error((c) => (c.caller_rules[0].trust_domains = ["other.td"]))).toMatch(/caller_rules\[0\].trust_domains\[0\] is not valid/);
    expect(error((c) => (c.caller_rules[0].trust_domains = []))).toMatch(/caller_rules\[0\].trust_domains must name/);
    expect(error((c) => (c.jwt = { audience: "x" }))).toMatch(/jwt.jwks_file or jwt.jwks_url is required/);
    expect(error((c) => (c.jwt.jwks_url = "https://spire/keys"))).toMatch(/exactly one/);
    expect(error((c) => delete c.jwt.audience)).toMatch(/jwt.audience is required/);
    expect(error((c) => (c.jwt.algorithms = ["HS256"]))).toMatch(/jwt.algorithms\[0\] is not valid/);
    expect(error((c) => (c.admins = ["spiffe://hexr.local/sidecar/x/y"]))).toMatch(/admins\[0\] is not valid/);
    expect(error((c) => (c.store = { engine: "mysql" }))).toMatch(/store.engine must be one of sqlite, postgres/);
    expect(error((c) => (c.store = { engine: "postgres", url: "postgres://u:pw@db/vault" }))).toMatch(/store.url must not hold a password/);
    expect(error((c) => (c.store = { engine: "postgres", url: "mysql://u@db/vault" }))).toMatch(/store.url must be postgres:/);
    expect(error((c) => (c.store = { engine: "postgres", url: "postgres://u@db/vault?sslmode=disable" }))).toMatch(/store.url must have no query/);
    expect(error((c) => (c.kek.keys = []))).toMatch(/kek.keys must list at least one key/);
    expect(error((c) => (c.kek.keys = [{ id: "a", file: "a" }, { id: "b", file: "b" }]))).toMatch(/kek.active is required/);
    expect(error((c) => (c.kek.active = "nope"))).toMatch(/kek.active must be the id of one of kek.keys/);
    expect(error((c) => (c.kek.keys = [{ id: "a", file: "a" }, { id: "a", file: "b" }]))).toMatch(/lists the id a twice/);
    expect(error((c) => (c.kek.keys = [{ id: "bad id", file: "a" }]))).toMatch(/kek.keys\[0\].id must match/);
    expect(error((c) => (c.kek.keys = [{ id: "a" }]))).toMatch(/kek.keys\[0\].file or kms_key_id is required/);
    expect(error((c) => (c.kek.keys = [{ id: "a", kms_key_id: "alias/x" }]))).toMatch(/kek.kms is required/);
    expect(error((c) => (c.limits = { versions_kept: 0 }))).toMatch(/limits.versions_kept must be an integer from 1/);
    expect(error((c) => (c.limits = { max_body_bytes: 10 }))).toMatch(/limits.max_body_bytes must be an integer/);
    expect(error((c) => (c.log_level = "loud"))).toMatch(/log_level must be one of/);
  });

  it("refuses unknown fields, at any depth", () => {
    expect(error((c) => (c.caller_rule = []))).toBe("vault config: caller_rule is not a known field (see vault/README.md)");
    expect(error((c) => (c.tls.require_client_cert = false))).toMatch(/tls.require_client_cert is not a known field/);
    expect(error((c) => (c.kek.keys[0].path = "x"))).toMatch(/kek.keys\[0\].path is not a known field/);
    expect(error((c) => (c.caller_rules[0].static_identities = []))).toMatch(/caller_rules\[0\].static_identities is not a known field/);
    expect(parseConfig({ ...minimal(), $comment: "comments are fine" }, "/")).toBeTruthy();
  });

  it("names the file that is not JSON", () => {
    const file = path.join(dir.dir, "broken.json");
    writeFileSync(file, "{ not json");
    expect(() => loadConfigFile(file)).toThrow(new RegExp(`vault config: ${file} is not readable JSON`));
  });
});
