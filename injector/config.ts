// The injector's configuration: one JSON document (documented field by field in
// injector/README.md). Loading validates every field and fills in defaults, so a mistake stops
// the injector at start-up with a message naming the field instead of failing a request later.
import path from "node:path";
import {
  CATALOG, CONTRACT, DEFAULT_REGIONS, isKeyService, isPathSegment, isRegion, isSecretName, isServedRegion, isServiceName, isTrustDomain, llmKeySecret,
  parseAgentSpiffeId, parseSpiffeId, providerOf, PROVIDERS, REGIONS, type Provider,
} from "../contract/index.ts";
import { Fields, readConfigJson } from "../service/config-fields.ts";
import { DEFAULT_METRICS_PORTS, parseMetricsSection, type MetricsListen } from "../service/metrics.ts";
import type { JwtSvidSettings } from "../spiffe/jwt-svid.ts";
import { REGION_RULE } from "./catalog.ts";

/** identity key ("tenant/agent/role", "tenant/agent", "tenant" or "*") → value; most specific wins. */
export type IdentityMap = Readonly<Record<string, string>>;

export interface TlsConfig {
  cert_file: string;
  key_file: string;
  client_ca_file: string | null;
  require_client_cert: boolean;
}

export interface CallerRule {
  /** Exact SPIFFE ID, or a prefix ending in "/*". */
  spiffe_id: string;
  /** Tenants whose agents' JWT-SVIDs this caller may relay; "*" for all. */
  tenants: string[];
  /**
   * Agent SPIFFE IDs this caller may assert without a JWT-SVID (identity source `static`: the
   * sidecar's metadata listeners, whose stock-SDK protocols carry no caller credential), each
   * exact or a prefix ending in "/*". The only way to that right: no caller has it implicitly.
   */
  static_identities: string[];
}

export interface AwsConfig {
  sts_endpoint: string | null;
  sts_region: string;
  role_arns: IdentityMap;
  duration_seconds: number;
  timeout_ms: number;
  /** `aud` of the tokens minted for STS: the client ID registered with the IAM OIDC provider. */
  token_audience: string;
  /** IAM action prefix per AWS service where it is not the name after "aws_" (on top of the built-in table). */
  action_prefixes: Readonly<Record<string, string>>;
}

export interface GcpConfig {
  sts_endpoint: string;
  iam_credentials_endpoint: string;
  /** Full audience: //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R */
  workload_identity_provider: string;
  service_accounts: IdentityMap;
  token_lifetime_seconds: number;
  timeout_ms: number;
  /** `aud` of the tokens minted for GCP STS: by default the provider's full resource name. */
  token_audience: string;
}

export interface AzureConfig {
  authority_host: string;
  tenant_id: string;
  client_ids: IdentityMap;
  /** Token scope per service, on top of the built-in ones. */
  scopes: Readonly<Record<string, string>>;
  ca_file: string | null;
  timeout_ms: number;
  /** `aud` of the client assertions minted for Entra ID (the federated credential's audience). */
  token_audience: string;
}

/** The injector as the OIDC issuer the clouds trust: it mints the tokens they see (injector/oidc/). */
export interface OidcConfig {
  /** https URL the clouds' federation is configured with; `iss` of every minted token. */
  issuer: string;
  /** Where the clouds fetch the public keys (the discovery document's jwks_uri). */
  jwks_uri: string;
  /** Folder of signing key files, named `YYYYMMDDTHHMMSSZ[-label].pem|.jwk` (activation time, UTC). */
  signing_keys_dir: string;
  /** Development: create a key in `signing_keys_dir` when it has none. */
  generate_key: boolean;
  /** Lifetime of a minted token (`exp` − `iat`). */
  token_lifetime_seconds: number;
  /** Plain-HTTP listener serving only the discovery document and the JWKS; null = none. */
  discovery_listen: { host: string; port: number } | null;
}

/**
 * The regions an exchange may name, per provider: a list (the contract's, or a narrower one), or
 * "any" for any region of the grammar (load tests only).
 */
export type ServedRegions = Readonly<Record<Provider, readonly string[] | "any">>;

/** Following the bridge's revocation log (injector/revocations.ts). */
export interface RevocationConfig {
  /** https URL of the bridge; its GET /v1/revocations is polled over mTLS. */
  bridge_url: string;
  /** The URI SAN the bridge's certificate must carry. */
  bridge_spiffe_id: string;
  /** The injector's own X.509-SVID and key, presented to the bridge (default: tls.cert_file, tls.key_file). */
  cert_file: string;
  key_file: string;
  /** CA bundle the bridge's certificate must chain to (default: tls.client_ca_file). */
  ca_file: string;
  poll_interval_ms: number;
  timeout_ms: number;
  /** Once the log has not been read for this long, every exchange is refused (503) until it is. */
  max_log_staleness_ms: number;
  /** How long a revoked prefix is refused after the injector learned of it. */
  deny_seconds: number;
  /** Where the deny-list and the epoch survive a restart; null = memory only. */
  state_file: string | null;
}

/**
 * llm_* services (providers/llm.ts): the provider API keys the injector reads from Hexr Vault on
 * the calling agent's behalf, in the agent's own (agent-level) scope, over mTLS with its X.509-SVID.
 */
export interface LlmConfig {
  /** https URL of the vault (it serves mTLS only). */
  vault_url: string;
  /** The URI SAN the vault's certificate must carry. */
  vault_spiffe_id: string;
  /** The injector's X.509-SVID presented to the vault (default: tls.cert_file, tls.key_file); re-read when rotated. */
  cert_file: string;
  key_file: string;
  /** CA bundle the vault's certificate must chain to (default: tls.client_ca_file). */
  ca_file: string;
  /** The vault secret of each llm_* service: the contract's key_secret (llm_openai → OPENAI_API_KEY), unless overridden here. */
  key_secrets: Readonly<Record<string, string>>;
  /** expires_at = now + this: the longest a key rotated (or deleted) in the vault is still handed out. */
  key_ttl_seconds: number;
  /** The whole vault read; over it → 504. */
  timeout_ms: number;
}

export interface InjectorConfig {
  listen: { host: string; port: number };
  tls: TlsConfig | null;
  max_body_bytes: number;
  jwt: JwtSvidSettings & { max_token_age_seconds: number | null };
  trust_domains: string[];
  caller_rules: CallerRule[];
  opa: { url: string; decision_path: string; timeout_ms: number; token_file: string | null };
  default_regions: Record<Provider, string>;
  regions: ServedRegions;
  revocation: RevocationConfig | null;
  extra_services: string[];
  oidc: OidcConfig | null;
  aws: AwsConfig | null;
  gcp: GcpConfig | null;
  azure: AzureConfig | null;
  llm: LlmConfig | null;
  /** Plain-HTTP listener serving only GET /metrics (Prometheus text); null = none. */
  metrics: MetricsListen | null;
  log_level: string;
}

export class ConfigError extends Error {
  constructor(field: string, problem: string) {
    super(`injector config: ${field} ${problem}`);
    this.name = "ConfigError";
  }
}

/** Algorithms the JWT-SVID specification allows; never "none" or an HMAC. */
export const JWT_SVID_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"];
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]{1,512}$/;
/** IAM action prefixes ("s3", "dynamodb", "elasticloadbalancing", ...). */
export const IAM_ACTION_PREFIX = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const DEFAULT_AWS_TOKEN_AUDIENCE = "sts.amazonaws.com";
export const DEFAULT_AZURE_TOKEN_AUDIENCE = "api://AzureADTokenExchange";
/** Bounds of a minted token's lifetime: long enough for clock skew and a slow STS, short enough to be useless if leaked. */
export const OIDC_TOKEN_LIFETIME = { default: 300, min: 60, max: 3600 };
/**
 * Bounds of the cloud credentials' lifetime (aws.duration_seconds, gcp.token_lifetime_seconds).
 * The sidecar serves a credential only while more than its refresh buffer (1200 s) is left, so
 * every copy an SDK gets has at least 1200 s to go: outside botocore's refresh window (it
 * re-fetches on every call once 15 min or less are left), google-auth's (3 min 45 s in Python,
 * 5 min in Node) and MSAL's (5 min). The lifetime decides how long the sidecar can serve one
 * credential: lifetime − 1200 s. At the old AWS minimum of 900 s that was nothing (a credential
 * arrived inside the buffer, so every request went to the injector); 1800 s leaves 10 minutes.
 * The default, one hour, is what an IAM role allows without raising its maximum session
 * duration, and Google's default for impersonated tokens.
 */
export const CLOUD_CREDENTIAL_LIFETIME = { default: 3600, min: 1800, max: 43_200 };
const DECISION_PATH = /^[A-Za-z0-9_]+(\/[A-Za-z0-9_]+)*$/;
/** Without jwt.max_token_age_seconds: the longest JWT-SVID lifetime a trust domain is expected to issue. */
export const DEFAULT_DENY_SECONDS = 3600;
/**
 * Bounds of an LLM API key's `expires_at` (llm.key_ttl_seconds). The sidecars serve a credential
 * only while more than their refresh_buffer_seconds (1200 by default) is left, so the default
 * gives each read five minutes of service: a rotated or deleted key stops being used within five
 * minutes, and a sidecar reads the key about once in that time (refresh-ahead), not per call.
 */
export const LLM_KEY_TTL = { default: 1500, min: 30, max: 86_400 };

/** Reads and validates a config file; relative file paths in it are relative to the file. */
export function loadConfigFile(file: string): InjectorConfig {
  return parseConfig(readConfigJson(file, (field, problem) => new ConfigError(field, problem)), path.dirname(path.resolve(file)));
}

/** Validates a config object (the file's JSON shape) and fills in defaults. */
export function parseConfig(raw: unknown, baseDir: string = process.cwd()): InjectorConfig {
  const root = new Fields(raw, "", baseDir, (field, problem) => new ConfigError(field, problem));
  const regions = parseRegions(root.section("regions"));
  const defaultRegions = parseDefaultRegions(root.section("default_regions"), regions);
  const tls = root.has("tls") ? parseTls(root.section("tls")) : null;
  const jwt = parseJwt(root.section("jwt"));
  const trustDomains = root.stringList("trust_domains", undefined, isTrustDomain);
  const config: InjectorConfig = {
    listen: parseListen(root.section("listen")),
    tls,
    max_body_bytes: root.integer("max_body_bytes", 4096, 1, 1024 * 1024),
    jwt,
    trust_domains: trustDomains,
    caller_rules: root.list("caller_rules", []).map((rule, index) => parseCallerRule(root.child(rule, `caller_rules[${index}]`), trustDomains)),
    opa: parseOpa(root.section("opa")),
    default_regions: defaultRegions,
    regions,
    revocation: root.has("revocation") ? parseRevocation(root.section("revocation"), tls, jwt.max_token_age_seconds) : null,
    extra_services: root.stringList("extra_services", [], isServiceName),
    oidc: root.has("oidc") ? parseOidc(root.section("oidc")) : null,
    aws: root.has("aws") ? parseAws(root.section("aws"), defaultRegions.aws) : null,
    gcp: root.has("gcp") ? parseGcp(root.section("gcp")) : null,
    azure: root.has("azure") ? parseAzure(root.section("azure")) : null,
    llm: root.has("llm") ? parseLlm(root.section("llm"), tls) : null,
    metrics: root.has("metrics") ? parseMetricsSection(root.section("metrics"), DEFAULT_METRICS_PORTS.injector) : null,
    log_level: root.oneOf("log_level", LOG_LEVELS, "info"),
  };
  if (config.trust_domains.length === 0) throw new ConfigError("trust_domains", "must name at least one trust domain");
  if (!config.oidc && (config.aws || config.gcp || config.azure)) {
    // The clouds trust only tokens the injector mints; without an issuer there is nothing to exchange.
    throw new ConfigError("oidc", "is required when aws, gcp or azure exchanges are configured");
  }
  if (config.oidc && config.oidc.issuer === config.jwt.issuer) {
    throw new ConfigError("oidc.issuer", "must differ from jwt.issuer: the clouds must not trust the issuer of the agents' own tokens");
  }
  return config;
}

function parseListen(fields: Fields, defaultPort = 8443): InjectorConfig["listen"] {
  return { host: fields.string("host", "127.0.0.1"), port: fields.integer("port", defaultPort, 0, 65535) };
}

function parseTls(fields: Fields): TlsConfig {
  const tls: TlsConfig = {
    cert_file: fields.file("cert_file"),
    key_file: fields.file("key_file"),
    client_ca_file: fields.has("client_ca_file") ? fields.file("client_ca_file") : null,
    require_client_cert: fields.boolean("require_client_cert", true),
  };
  if (tls.require_client_cert && !tls.client_ca_file) {
    throw new ConfigError(fields.name("client_ca_file"), "is required when require_client_cert is true");
  }
  return tls;
}

function parseJwt(fields: Fields): InjectorConfig["jwt"] {
  const jwt = {
    jwks_file: fields.has("jwks_file") ? fields.file("jwks_file") : null,
    jwks_url: fields.has("jwks_url") ? fields.url("jwks_url") : null,
    jwks_refresh_seconds: fields.integer("jwks_refresh_seconds", 60, 1, 3600),
    audience: fields.stringOrList("audience", ["hexr-credential-injector"]),
    issuer: fields.has("issuer") ? fields.string("issuer") : null,
    algorithms: fields.stringList("algorithms", [...JWT_SVID_ALGORITHMS], (alg) => JWT_SVID_ALGORITHMS.includes(alg)),
    clock_tolerance_seconds: fields.integer("clock_tolerance_seconds", 0, 0, 300),
    max_token_age_seconds: fields.has("max_token_age_seconds") ? fields.integer("max_token_age_seconds", undefined, 60, 7 * 86_400) : null,
  };
  if ((jwt.jwks_file === null) === (jwt.jwks_url === null)) {
    throw new ConfigError(fields.name("jwks_file"), "or jwt.jwks_url is required (exactly one)");
  }
  return jwt;
}

function parseCallerRule(fields: Fields, trustDomains: readonly string[]): CallerRule {
  const spiffeId = fields.string("spiffe_id");
  if (!parseSpiffeId(spiffeId.endsWith("/*") ? spiffeId.slice(0, -2) : spiffeId)) {
    throw new ConfigError(fields.name("spiffe_id"), "must be a SPIFFE ID, or a SPIFFE ID followed by /*");
  }
  const staticIdentities = fields.stringList("static_identities", [], (pattern) => isStaticIdentityPattern(pattern, trustDomains));
  // A rule that only lets its caller assert identities need not name tenants.
  const tenants = fields.stringList("tenants", staticIdentities.length > 0 ? [] : undefined);
  return { spiffe_id: spiffeId, tenants, static_identities: staticIdentities };
}

/**
 * An agent SPIFFE ID of a trusted trust domain, or such an ID's prefix ending in "/*" that names at
 * least the tenant (spiffe://td/agent/tenant/* or spiffe://td/agent/tenant/agent/*).
 */
function isStaticIdentityPattern(pattern: string, trustDomains: readonly string[]): boolean {
  if (!pattern.endsWith("/*")) {
    const agent = parseAgentSpiffeId(pattern);
    return agent !== undefined && trustDomains.includes(agent.trustDomain);
  }
  const prefix = parseSpiffeId(pattern.slice(0, -2));
  if (!prefix || !trustDomains.includes(prefix.trustDomain)) return false;
  const [kind, ...rest] = prefix.segments;
  return kind === CONTRACT.grammar.agent_spiffe_id.kind && rest.length >= 1 && rest.length <= 2;
}

function parseOpa(fields: Fields): InjectorConfig["opa"] {
  const decisionPath = fields.string("decision_path", "hexr/exchange/decision");
  if (!DECISION_PATH.test(decisionPath)) throw new ConfigError(fields.name("decision_path"), "must look like package/path/rule");
  return {
    url: fields.url("url"),
    decision_path: decisionPath,
    timeout_ms: fields.integer("timeout_ms", 500, 1, 60_000),
    token_file: fields.has("token_file") ? fields.file("token_file") : null,
  };
}

/**
 * `regions`: provider → the regions exchanges may name: a list within the contract's (narrower, or
 * the same), or "any" (every region of the grammar: load tests only). Default: the contract's.
 */
function parseRegions(fields: Fields): ServedRegions {
  const served: Record<Provider, readonly string[] | "any"> = { ...REGIONS };
  for (const key of fields.keys()) {
    if (!(PROVIDERS as readonly string[]).includes(key)) throw new ConfigError(fields.name(key), `is not a provider (${PROVIDERS.join(", ")})`);
  }
  for (const provider of PROVIDERS) {
    if (!fields.has(provider)) continue;
    if (fields.raw(provider) === "any") {
      served[provider] = "any";
      continue;
    }
    const list = fields.stringList(provider, undefined, (region) => isServedRegion(provider, region));
    if (list.length === 0) throw new ConfigError(fields.name(provider), 'must name at least one region, or be "any"');
    served[provider] = [...new Set(list)];
  }
  return served;
}

function parseDefaultRegions(fields: Fields, served: ServedRegions): Record<Provider, string> {
  const regions = { ...DEFAULT_REGIONS };
  for (const provider of PROVIDERS) {
    regions[provider] = regionField(fields, provider, DEFAULT_REGIONS[provider]);
    const list = served[provider];
    if (list !== "any" && !list.includes(regions[provider])) {
      throw new ConfigError(fields.name(provider), `must be one of the regions served for ${provider} (regions.${provider})`);
    }
  }
  return regions;
}

function parseRevocation(fields: Fields, tls: TlsConfig | null, maxTokenAge: number | null): RevocationConfig {
  const bridgeUrl = fields.url("bridge_url");
  if (!bridgeUrl.startsWith("https://")) throw new ConfigError(fields.name("bridge_url"), "must be an https URL (the bridge serves mTLS only)");
  const bridgeSpiffeId = fields.string("bridge_spiffe_id");
  if (!parseSpiffeId(bridgeSpiffeId)) throw new ConfigError(fields.name("bridge_spiffe_id"), "must be a SPIFFE ID");
  const inherited = (key: string, fallback: string | null | undefined, from: string): string => {
    if (fields.has(key)) return fields.file(key);
    if (!fallback) throw new ConfigError(fields.name(key), `is required (or ${from})`);
    return fallback;
  };
  const pollInterval = fields.integer("poll_interval_ms", 1000, 100, 60_000);
  const revocation: RevocationConfig = {
    bridge_url: bridgeUrl,
    bridge_spiffe_id: bridgeSpiffeId,
    cert_file: inherited("cert_file", tls?.cert_file, "tls.cert_file"),
    key_file: inherited("key_file", tls?.key_file, "tls.key_file"),
    ca_file: inherited("ca_file", tls?.client_ca_file, "tls.client_ca_file"),
    poll_interval_ms: pollInterval,
    timeout_ms: fields.integer("timeout_ms", 2000, 1, 60_000),
    max_log_staleness_ms: fields.integer("max_log_staleness_ms", 30_000, 100, 3_600_000),
    deny_seconds: fields.integer("deny_seconds", maxTokenAge ?? DEFAULT_DENY_SECONDS, 1, 7 * 86_400),
    state_file: fields.has("state_file") ? fields.file("state_file") : null,
  };
  if (revocation.max_log_staleness_ms < revocation.poll_interval_ms) {
    throw new ConfigError(fields.name("max_log_staleness_ms"), "must be at least poll_interval_ms");
  }
  if (maxTokenAge !== null && revocation.deny_seconds < maxTokenAge) {
    // A token issued just before a revocation must expire (by age) before the revocation does.
    throw new ConfigError(fields.name("deny_seconds"), "must be at least jwt.max_token_age_seconds");
  }
  return revocation;
}

function parseLlm(fields: Fields, tls: TlsConfig | null): LlmConfig {
  const vaultUrl = fields.url("vault_url");
  if (!vaultUrl.startsWith("https://")) throw new ConfigError(fields.name("vault_url"), "must be an https URL (the vault serves mTLS only)");
  const vaultSpiffeId = fields.string("vault_spiffe_id");
  if (!parseSpiffeId(vaultSpiffeId)) throw new ConfigError(fields.name("vault_spiffe_id"), "must be a SPIFFE ID");
  const inherited = (key: string, fallback: string | null | undefined, from: string): string => {
    if (fields.has(key)) return fields.file(key);
    if (!fallback) throw new ConfigError(fields.name(key), `is required (or ${from})`);
    return fallback;
  };
  // The catalog's llm_* services have their secret in the contract; an extra one (extra_services) needs one here.
  const contractSecrets: Record<string, string> = {};
  for (const service of CATALOG.filter(isKeyService)) {
    const secret = llmKeySecret(service);
    if (secret) contractSecrets[service] = secret;
  }
  const overrides = fields.stringMap("key_secrets", isKeyService, isSecretName);
  return {
    vault_url: vaultUrl.replace(/\/+$/, ""),
    vault_spiffe_id: vaultSpiffeId,
    cert_file: inherited("cert_file", tls?.cert_file, "tls.cert_file"),
    key_file: inherited("key_file", tls?.key_file, "tls.key_file"),
    ca_file: inherited("ca_file", tls?.client_ca_file, "tls.client_ca_file"),
    key_secrets: { ...contractSecrets, ...overrides },
    key_ttl_seconds: fields.integer("key_ttl_seconds", LLM_KEY_TTL.default, LLM_KEY_TTL.min, LLM_KEY_TTL.max),
    timeout_ms: fields.integer("timeout_ms", 3000, 1, 60_000),
  };
}

function parseOidc(fields: Fields): OidcConfig {
  const issuer = fields.httpsUrl("issuer");
  return {
    issuer,
    jwks_uri: fields.httpsUrl("jwks_uri", `${issuer}/keys`),
    signing_keys_dir: fields.file("signing_keys_dir"),
    generate_key: fields.boolean("generate_key", false),
    token_lifetime_seconds: fields.integer("token_lifetime_seconds", OIDC_TOKEN_LIFETIME.default, OIDC_TOKEN_LIFETIME.min, OIDC_TOKEN_LIFETIME.max),
    discovery_listen: fields.has("discovery_listen") ? parseListen(fields.section("discovery_listen"), 8444) : null,
  };
}

function parseAws(fields: Fields, defaultRegion: string): AwsConfig {
  return {
    sts_endpoint: fields.has("sts_endpoint") ? fields.url("sts_endpoint") : null,
    sts_region: regionField(fields, "sts_region", defaultRegion),
    role_arns: identityMapField(fields, "role_arns", (arn) => ROLE_ARN.test(arn), true),
    duration_seconds: fields.integer("duration_seconds", CLOUD_CREDENTIAL_LIFETIME.default, CLOUD_CREDENTIAL_LIFETIME.min, CLOUD_CREDENTIAL_LIFETIME.max),
    timeout_ms: fields.integer("timeout_ms", 5000, 1, 120_000),
    token_audience: fields.string("token_audience", DEFAULT_AWS_TOKEN_AUDIENCE),
    action_prefixes: fields.stringMap("action_prefixes", (service) => isServiceName(service) && providerOf(service) === "aws", (prefix) => IAM_ACTION_PREFIX.test(prefix)),
  };
}

function parseGcp(fields: Fields): GcpConfig {
  const provider = fields.string("workload_identity_provider");
  const audience = provider.startsWith("//") ? provider : `//iam.googleapis.com/${provider}`;
  if (!/^\/\/iam\.googleapis\.com\/projects\/[^/]+\/locations\/[^/]+\/workloadIdentityPools\/[^/]+\/providers\/[^/]+$/.test(audience)) {
    throw new ConfigError(fields.name("workload_identity_provider"), "must be projects/N/locations/global/workloadIdentityPools/POOL/providers/PROVIDER");
  }
  return {
    sts_endpoint: fields.url("sts_endpoint", "https://sts.googleapis.com/v1/token"),
    iam_credentials_endpoint: fields.url("iam_credentials_endpoint", "https://iamcredentials.googleapis.com"),
    workload_identity_provider: audience,
    service_accounts: identityMapField(fields, "service_accounts", (email) => /^[^@\s/]+@[^@\s/]+$/.test(email), false),
    token_lifetime_seconds: fields.integer("token_lifetime_seconds", CLOUD_CREDENTIAL_LIFETIME.default, CLOUD_CREDENTIAL_LIFETIME.min, CLOUD_CREDENTIAL_LIFETIME.max),
    timeout_ms: fields.integer("timeout_ms", 5000, 1, 120_000),
    token_audience: fields.string("token_audience", audience),
  };
}

function parseAzure(fields: Fields): AzureConfig {
  return {
    authority_host: fields.url("authority_host", "https://login.microsoftonline.com"),
    tenant_id: fields.string("tenant_id"),
    client_ids: identityMapField(fields, "client_ids", (id) => /^[A-Za-z0-9-]{1,64}$/.test(id), true),
    scopes: fields.stringMap("scopes", (service) => isServiceName(service) && providerOf(service) === "azure"),
    ca_file: fields.has("ca_file") ? fields.file("ca_file") : null,
    timeout_ms: fields.integer("timeout_ms", 5000, 1, 120_000),
    token_audience: fields.string("token_audience", DEFAULT_AZURE_TOKEN_AUDIENCE),
  };
}

/** "*", "tenant", "tenant/agent" or "tenant/agent/role", each part an agent ID's segment. */
function isIdentityKey(key: string): boolean {
  const parts = key.split("/");
  return key === "*" || (parts.length <= 3 && parts.every(isPathSegment));
}

/** Typed access to one JSON object of the config, with errors that name the field. */
/** A region, as the contract's grammar has it. */
function regionField(fields: Fields, key: string, fallback?: string): string {
  return fields.value(key, fallback, (v) => typeof v === "string" && isRegion(v), `a region matching ${REGION_RULE}`);
}

/** identity key → value, each value checked; `required` maps must have an entry. */
function identityMapField(fields: Fields, key: string, validValue: (value: string) => boolean, required: boolean): IdentityMap {
  const map = fields.stringMap(key, isIdentityKey);
  for (const [entry, value] of Object.entries(map)) {
    if (!validValue(value)) throw new ConfigError(`${fields.name(key)}["${entry}"]`, `is not valid: ${JSON.stringify(value)}`);
  }
  if (required && Object.keys(map).length === 0) throw fields.error(key, "must have at least one entry");
  return map;
}
