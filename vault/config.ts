// The vault's configuration: one JSON document, documented field by field in vault/README.md.
// Loading validates every field and fills in defaults, so a mistake stops the vault at start-up
// with a message naming the field. Unknown fields are refused too: a misspelt `caller_rules` or
// `kek` must not silently leave the vault with a default the operator did not mean.
import path from "node:path";
import { isPathSegment, isTrustDomain, parseAgentSpiffeId, parseSpiffeId, VAULT } from "../contract/index.ts";
import { Fields, readConfigJson } from "../service/config-fields.ts";
import { DEFAULT_METRICS_PORTS, parseMetricsSection, type MetricsListen } from "../service/metrics.ts";
import type { JwtSvidSettings } from "../spiffe/jwt-svid.ts";
import type { KmsSettings } from "./crypto/kek-kms.ts";

const README = "vault/README.md";

export interface CallerRule {
  /** Exact SPIFFE ID of the mTLS caller (a sidecar), or a prefix ending in "/*". */
  spiffe_id: string;
  /** Tenants whose agents this caller may assert in x-hexr-spiffe-id; "*" for every tenant. */
  tenants: string[];
  /** Trust domains of those agents (each one of trust_domains, or "*" for all of them); null = the caller's own only. */
  trust_domains: string[] | null;
}

export type KekKey = { id: string; file: string } | { id: string; kms_key_id: string };

export interface KekConfig {
  /** The id of the KEK that wraps every new data key. */
  active: string;
  keys: KekKey[];
  /** Create the active key file when it does not exist (development, tests). */
  generate_missing: boolean;
  /** Required when a key is in KMS. */
  kms: KmsSettings | null;
}

export type StoreConfig =
  | { engine: "sqlite"; path: string }
  | {
      engine: "postgres";
      /** postgres://USER@HOST:PORT/DATABASE, without a password. */
      url: string;
      password_file: string | null;
      /** TLS to PostgreSQL, verifying its certificate against this CA (and its host name); null = plain TCP. */
      ca_file: string | null;
      pool_size: number;
      statement_timeout_ms: number;
      connect_timeout_ms: number;
    };

export interface VaultConfig {
  listen: { host: string; port: number };
  tls: { cert_file: string; key_file: string; client_ca_file: string };
  trust_domains: string[];
  caller_rules: CallerRule[];
  jwt: JwtSvidSettings;
  /** Agent SPIFFE IDs that may read and verify the audit log. */
  admins: string[];
  store: StoreConfig;
  kek: KekConfig;
  limits: {
    max_body_bytes: number;
    versions_kept: number;
    max_secrets_per_namespace: number;
  };
  /** Plain-HTTP listener serving only GET /metrics (Prometheus text); null = none. */
  metrics: MetricsListen | null;
  log_level: string;
}

export class ConfigError extends Error {
  constructor(field: string, problem: string) {
    super(`vault config: ${field} ${problem}`);
    this.name = "ConfigError";
  }
}

/** Algorithms the JWT-SVID specification allows; never "none" or an HMAC. */
export const JWT_SVID_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"];
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const KEK_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const DEFAULT_PORT = 8445;
/**
 * A value of max_value_bytes, each byte JSON-escaped as \u00XX at worst (6 bytes), plus room for
 * the rest of the body: the largest legitimate put fits, nothing much larger is read.
 */
export const DEFAULT_MAX_BODY_BYTES = 6 * VAULT.maxValueBytes + 4096;
export const DEFAULT_VERSIONS_KEPT = 16;
export const DEFAULT_MAX_SECRETS_PER_NAMESPACE = 10_000;

/** Reads and validates a config file; relative paths in it are relative to the file's folder. */
export function loadConfigFile(file: string): VaultConfig {
  return parseConfig(readConfigJson(file, (field, problem) => new ConfigError(field, problem)), path.dirname(path.resolve(file)));
}

/** Validates a config object (the file's JSON shape) and fills in defaults. */
export function parseConfig(raw: unknown, baseDir: string = process.cwd()): VaultConfig {
  const root = new Fields(raw, "", baseDir, (field, problem) => new ConfigError(field, problem));
  const trustDomains = root.stringList("trust_domains", undefined, isTrustDomain);
  if (trustDomains.length === 0) throw new ConfigError("trust_domains", "must name at least one trust domain");
  const config: VaultConfig = {
    listen: parseListen(root.section("listen")),
    tls: parseTls(root.section("tls", true)),
    trust_domains: trustDomains,
    caller_rules: root.list("caller_rules").map((rule, index) => parseCallerRule(root.child(rule, `caller_rules[${index}]`), trustDomains)),
    jwt: parseJwt(root.section("jwt", true)),
    admins: root.stringList("admins", [], (id) => {
      const agent = parseAgentSpiffeId(id);
      return agent !== undefined && trustDomains.includes(agent.trustDomain);
    }),
    store: parseStore(root.section("store", true)),
    kek: parseKek(root.section("kek", true)),
    limits: parseLimits(root.section("limits")),
    metrics: root.has("metrics") ? parseMetrics(root.section("metrics")) : null,
    log_level: root.oneOf("log_level", LOG_LEVELS, "info"),
  };
  if (config.caller_rules.length === 0) throw new ConfigError("caller_rules", "must have at least one rule: without one, no sidecar may call");
  root.done(README);
  return config;
}

function parseMetrics(fields: Fields): MetricsListen {
  const metrics = parseMetricsSection(fields, DEFAULT_METRICS_PORTS.vault);
  fields.done(README);
  return metrics;
}

function parseListen(fields: Fields): VaultConfig["listen"] {
  const listen = { host: fields.string("host", "127.0.0.1"), port: fields.integer("port", DEFAULT_PORT, 0, 65535) };
  fields.done(README);
  return listen;
}

function parseTls(fields: Fields): VaultConfig["tls"] {
  const tls = { cert_file: fields.file("cert_file"), key_file: fields.file("key_file"), client_ca_file: fields.file("client_ca_file") };
  fields.done(README);
  return tls;
}

function parseCallerRule(fields: Fields, trustDomains: readonly string[]): CallerRule {
  const spiffeId = fields.string("spiffe_id");
  const parsed = parseSpiffeId(spiffeId.endsWith("/*") ? spiffeId.slice(0, -2) : spiffeId);
  if (!parsed) throw new ConfigError(fields.name("spiffe_id"), "must be a SPIFFE ID, or a SPIFFE ID followed by /*");
  if (!trustDomains.includes(parsed.trustDomain)) throw new ConfigError(fields.name("spiffe_id"), `is not in a trust domain of trust_domains`);
  const tenants = fields.stringList("tenants", undefined, (tenant) => tenant === "*" || isPathSegment(tenant));
  if (tenants.length === 0) throw new ConfigError(fields.name("tenants"), 'must name at least one tenant (or "*")');
  const domains = fields.has("trust_domains") ? fields.stringList("trust_domains", undefined, (td) => td === "*" || trustDomains.includes(td)) : null;
  if (domains?.length === 0) throw new ConfigError(fields.name("trust_domains"), "must name at least one trust domain (or be left out)");
  fields.done(README);
  return { spiffe_id: spiffeId, tenants, trust_domains: domains };
}

function parseJwt(fields: Fields): VaultConfig["jwt"] {
  const jwt = {
    jwks_file: fields.has("jwks_file") ? fields.file("jwks_file") : null,
    jwks_url: fields.has("jwks_url") ? fields.url("jwks_url") : null,
    jwks_refresh_seconds: fields.integer("jwks_refresh_seconds", 60, 1, 3600),
    audience: fields.stringOrList("audience"),
    issuer: fields.has("issuer") ? fields.string("issuer") : null,
    algorithms: fields.stringList("algorithms", [...JWT_SVID_ALGORITHMS], (alg) => JWT_SVID_ALGORITHMS.includes(alg)),
    clock_tolerance_seconds: fields.integer("clock_tolerance_seconds", 0, 0, 300),
  };
  if ((jwt.jwks_file === null) === (jwt.jwks_url === null)) {
    throw new ConfigError(fields.name("jwks_file"), "or jwt.jwks_url is required (exactly one)");
  }
  if (jwt.audience.length === 0) throw new ConfigError(fields.name("audience"), "must name at least one audience");
  fields.done(README);
  return jwt;
}

function parseStore(fields: Fields): StoreConfig {
  const engine = fields.oneOf("engine", ["sqlite", "postgres"], "sqlite") as "sqlite" | "postgres";
  let store: StoreConfig;
  if (engine === "sqlite") {
    store = { engine, path: fields.file("path") };
  } else {
    const url = fields.string("url");
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {}
    if (!parsed || (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") || !parsed.hostname || !parsed.username) {
      throw new ConfigError(fields.name("url"), "must be postgres://USER@HOST[:PORT]/DATABASE");
    }
    if (parsed.password) throw new ConfigError(fields.name("url"), "must not hold a password: put it in store.password_file");
    if (parsed.search) throw new ConfigError(fields.name("url"), "must have no query: use store.ca_file for TLS");
    store = {
      engine,
      url,
      password_file: fields.has("password_file") ? fields.file("password_file") : null,
      ca_file: fields.has("ca_file") ? fields.file("ca_file") : null,
      pool_size: fields.integer("pool_size", 10, 1, 200),
      statement_timeout_ms: fields.integer("statement_timeout_ms", 5000, 100, 600_000),
      connect_timeout_ms: fields.integer("connect_timeout_ms", 3000, 100, 60_000),
    };
  }
  fields.done(README);
  return store;
}

function parseKek(fields: Fields): KekConfig {
  const keys = fields.list("keys").map((entry, index): KekKey => {
    const key = fields.child(entry, `${fields.name("keys")}[${index}]`);
    const id = key.string("id");
    if (!KEK_ID.test(id)) throw new ConfigError(key.name("id"), `must match ${KEK_ID.source}`);
    if (key.has("file") === key.has("kms_key_id")) throw new ConfigError(key.name("file"), "or kms_key_id is required (exactly one)");
    const parsed: KekKey = key.has("file") ? { id, file: key.file("file") } : { id, kms_key_id: key.string("kms_key_id") };
    key.done(README);
    return parsed;
  });
  if (keys.length === 0) throw new ConfigError(fields.name("keys"), "must list at least one key");
  const ids = keys.map((key) => key.id);
  const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
  if (duplicate) throw new ConfigError(fields.name("keys"), `lists the id ${duplicate} twice`);
  const active = fields.string("active", keys.length === 1 ? keys[0].id : undefined);
  if (!ids.includes(active)) throw new ConfigError(fields.name("active"), `must be the id of one of kek.keys (${ids.join(", ")})`);
  const usesKms = keys.some((key) => "kms_key_id" in key);
  let kms: KmsSettings | null = null;
  if (fields.has("kms")) {
    const section = fields.section("kms");
    kms = {
      region: section.string("region"),
      endpoint: section.has("endpoint") ? section.url("endpoint") : null,
      timeout_ms: section.integer("timeout_ms", 3000, 100, 60_000),
    };
    section.done(README);
  } else if (usesKms) {
    throw new ConfigError(fields.name("kms"), "is required when a key is in KMS (kms_key_id): at least its region");
  }
  const config = { active, keys, generate_missing: fields.boolean("generate_missing", false), kms };
  fields.done(README);
  return config;
}

function parseLimits(fields: Fields): VaultConfig["limits"] {
  const limits = {
    max_body_bytes: fields.integer("max_body_bytes", DEFAULT_MAX_BODY_BYTES, 1024, 8 * 1024 * 1024),
    versions_kept: fields.integer("versions_kept", DEFAULT_VERSIONS_KEPT, 1, 1000),
    max_secrets_per_namespace: fields.integer("max_secrets_per_namespace", DEFAULT_MAX_SECRETS_PER_NAMESPACE, 1, 1_000_000),
  };
  fields.done(README);
  return limits;
}

