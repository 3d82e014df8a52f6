// The shared contract for the TypeScript components (injector, bridge, stack, tests), read from
// contract.json: the one definition of the providers and the catalog, the grammars, the key
// formats, the error types, the header names, the vault's paths and the LLM route. The filter gets
// the same facts as AssemblyScript constants generated from the same file (scripts/generate-contract.ts).
import { readFileSync } from "node:fs";

interface CharClassGrammar {
  chars: string;
  min: number;
  max: number;
  forbidden?: string[];
}

interface ContractFile {
  providers: string[];
  catalog: string[];
  azure_resources: Record<string, string>;
  default_regions: Record<string, string>;
  regions: Record<string, string[]>;
  grammar: {
    service: { separator: string; name_first: string; name_rest: string; name_max: number };
    region: CharClassGrammar;
    trust_domain: CharClassGrammar;
    path_segment: CharClassGrammar;
    llm_model: CharClassGrammar;
    agent_spiffe_id: { scheme: string; kind: string; max: number };
  };
  keys: { credential_prefix: string; separator: string; lock_prefix: string; max_bytes: number };
  errors: { types: ErrorType[]; statuses: Record<ErrorType, number[]> };
  vault: {
    secrets_path: string;
    audit_path: string;
    batch_name: string;
    name: { first: string; chars: string; min: number; max: number };
    max_value_bytes: number;
    max_batch_names: number;
  };
  llm: {
    path: string;
    usage_path: string;
    /** The counts of a usage row (GET usage_path), in order. */
    usage_counts: string[];
    key_provider: string;
    providers: Record<string, LlmProviderFile>;
    agent_key_headers: string[];
    key_credentials: { api_key: string; models: string };
  };
  headers: Record<string, string>;
  cache_tiers: string[];
  identity_sources: string[];
}

interface LlmProviderFile {
  service: string;
  auth_header: string;
  auth_prefix: string;
  key_secret: string | null;
  endpoints: string[];
}

export const CONTRACT_PATH = new URL("./contract.json", import.meta.url);
export const VECTORS_PATH = new URL("./vectors.json", import.meta.url);

const contract = JSON.parse(readFileSync(CONTRACT_PATH, "utf8")) as ContractFile;
const grammar = contract.grammar;

/** Expands a class such as "a-z0-9_-" (ranges, then single characters) into its characters. */
export function expandCharClass(spec: string): string[] {
  const chars: string[] = [];
  for (let i = 0; i < spec.length; i++) {
    if (i + 2 < spec.length && spec[i + 1] === "-") {
      for (let c = spec.charCodeAt(i); c <= spec.charCodeAt(i + 2); c++) chars.push(String.fromCharCode(c));
      i += 2;
    } else {
      chars.push(spec[i]);
    }
  }
  return chars;
}

function regexClass(spec: string): string {
  return "[" + expandCharClass(spec).map((c) => c.replace(/[\\\]^-]/g, "\\$&")).join("") + "]";
}

/** Members whose name starts with "$" are the contract's comments, not data. */
function withoutComments<T>(section: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(section).filter(([key]) => !key.startsWith("$")));
}

/**
 * The providers a service name may start with: the three clouds, whose credentials the injector
 * mints through federation, and `llm`, whose services (`llm_openai`, `llm_anthropic`) are API keys
 * the injector reads from Hexr Vault in the caller's scope (the `llm` section below). The type
 * names them so that code can switch over them; the contract is checked against it on load.
 */
export type Provider = "aws" | "gcp" | "azure" | "llm";
const KNOWN_PROVIDERS: readonly Provider[] = ["aws", "gcp", "azure", "llm"];

/** The contract's providers, in its order (the service grammar's alternatives). */
export const PROVIDERS: readonly Provider[] = contract.providers.map((provider) => {
  if (!(KNOWN_PROVIDERS as readonly string[]).includes(provider)) {
    throw new Error(`contract.json names provider ${JSON.stringify(provider)}, which contract/index.ts's Provider type does not know`);
  }
  return provider as Provider;
});
export const CATALOG: readonly string[] = contract.catalog;

/** The regions each provider serves: the only ones an exchange may name (contract.json `regions`). */
export const REGIONS: Readonly<Record<Provider, readonly string[]>> = Object.fromEntries(
  PROVIDERS.map((provider) => [provider, regionsOf(provider)]),
) as Record<Provider, readonly string[]>;
/** The region an exchange gets when it names none, per provider; always one the provider serves. */
export const DEFAULT_REGIONS: Readonly<Record<Provider, string>> = Object.fromEntries(
  PROVIDERS.map((provider) => [provider, defaultRegionOf(provider)]),
) as Record<Provider, string>;

function regionsOf(provider: Provider): readonly string[] {
  const regions = withoutComments(contract.regions)[provider];
  if (!Array.isArray(regions) || regions.length === 0) throw new Error(`contract.json regions.${provider} must list the regions ${provider} serves`);
  return regions;
}

function defaultRegionOf(provider: Provider): string {
  const region = withoutComments(contract.default_regions)[provider];
  if (!regionsOf(provider).includes(region)) throw new Error(`contract.json default_regions.${provider} must be one of regions.${provider}`);
  return region;
}

export function isServedRegion(provider: Provider, region: string): boolean {
  return REGIONS[provider]?.includes(region) ?? false;
}
/** The Entra ID resource (token audience) of each built-in Azure service; its scope is `{resource}/.default`. */
export const AZURE_RESOURCES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(contract.azure_resources).filter(([service]) => !service.startsWith("$")),
);

export const HEADERS = contract.headers as Readonly<{
  prefix: string; spiffe_id: string; tenant: string; agent: string; role: string;
  identity_source: string; service: string; region: string; cache: string; expires_at: string;
}>;
export type ErrorType = "BadRequest" | "AuthenticationError" | "CredentialError";
export const ERROR_TYPES: readonly ErrorType[] = contract.errors.types;
export const ERROR_STATUSES: Readonly<Record<ErrorType, readonly number[]>> = contract.errors.statuses;
export const CACHE_TIERS: readonly string[] = contract.cache_tiers;
export const KEY_MAX_BYTES = contract.keys.max_bytes;
export const IDENTITY_SOURCES = contract.identity_sources as readonly ("mtls" | "jwt" | "static")[];
export const SERVICE_SEPARATOR = contract.grammar.service.separator;
export const AGENT_SPIFFE_ID_MAX = grammar.agent_spiffe_id.max;

const s = grammar.service;
/** {provider}_{name}: the shape of every service name, catalogued or configured. */
export const SERVICE_NAME = new RegExp(
  `^(?:${PROVIDERS.join("|")})${s.separator}${regexClass(s.name_first)}${regexClass(s.name_rest)}{0,${s.name_max - 1}}$`,
);

function charClassRegex(g: CharClassGrammar): RegExp {
  return new RegExp(`^${regexClass(g.chars)}{${g.min},${g.max}}$`);
}

export const REGION = charClassRegex(grammar.region);
/** A model (or Azure deployment) name on the LLM route: what usage keys, metric labels and OPA model scopes may hold. */
export const LLM_MODEL = charClassRegex(grammar.llm_model);
/** The region grammar as error messages show it, e.g. ^[a-z0-9-]{1,32}$. */
export const REGION_RULE = `^[${grammar.region.chars}]{${grammar.region.min},${grammar.region.max}}$`;
const TRUST_DOMAIN = charClassRegex(grammar.trust_domain);
const PATH_SEGMENT = charClassRegex(grammar.path_segment);

export function isServiceName(value: string): boolean {
  return SERVICE_NAME.test(value);
}

export function isRegion(value: string): boolean {
  return REGION.test(value);
}

export function isPathSegment(value: string): boolean {
  return PATH_SEGMENT.test(value) && !(grammar.path_segment.forbidden ?? []).includes(value);
}

export function isTrustDomain(value: string): boolean {
  return TRUST_DOMAIN.test(value);
}

/** A SPIFFE ID of any workload (a sidecar, the injector, the bridge, an agent). */
export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  readonly segments: readonly string[];
}

/** The SPIFFE ID specification's limit for a whole ID. */
const MAX_SPIFFE_ID_BYTES = 2048;

/**
 * Any workload's SPIFFE ID, strictly as the SPIFFE ID specification defines it, with this
 * contract's character grammars (no port, query, fragment, empty or dot segment); undefined if invalid.
 * Agent IDs, the ones in keys, are parseAgentSpiffeId's.
 */
export function parseSpiffeId(value: string): SpiffeId | undefined {
  const scheme = grammar.agent_spiffe_id.scheme;
  if (Buffer.byteLength(value) > MAX_SPIFFE_ID_BYTES || !value.startsWith(scheme)) return undefined;
  const [trustDomain, ...segments] = value.slice(scheme.length).split("/");
  if (!isTrustDomain(trustDomain) || !segments.every(isPathSegment)) return undefined;
  return { id: value, trustDomain, segments };
}

export interface AgentSpiffeId {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly tenant: string;
  readonly agent: string;
  readonly role: string;
}

/** spiffe://{trust-domain}/agent/{tenant}/{agent}/{role}, strictly; undefined for anything else. */
export function parseAgentSpiffeId(value: string): AgentSpiffeId | undefined {
  const id = grammar.agent_spiffe_id;
  if (Buffer.byteLength(value) > id.max || !value.startsWith(id.scheme)) return undefined;
  const [trustDomain, kind, tenant, agent, role, ...rest] = value.slice(id.scheme.length).split("/");
  if (rest.length > 0 || kind !== id.kind || !isTrustDomain(trustDomain)) return undefined;
  if (![tenant, agent, role].every((segment) => segment !== undefined && isPathSegment(segment))) return undefined;
  return { spiffeId: value, trustDomain, tenant, agent, role };
}

export function providerOf(service: string): Provider {
  return service.slice(0, service.indexOf(s.separator)) as Provider;
}

const k = contract.keys;
export const CREDENTIAL_KEY_PREFIX = k.credential_prefix;
export const LOCK_KEY_PREFIX = k.lock_prefix;

/** cred:{spiffe-id}:{service}:{region}: where a credential lives in L1 and L2. */
export function credentialKey(spiffeId: string, service: string, region: string): string {
  return k.credential_prefix + spiffeId + k.separator + service + k.separator + region;
}

/** lock:{credential key}: the cross-pod exchange lock of one credential. */
export function lockKey(credential: string): string {
  return k.lock_prefix + credential;
}

export interface CredentialKeyParts {
  readonly identity: AgentSpiffeId;
  readonly service: string;
  readonly region: string;
}

/** Splits a credential key into its validated parts; undefined unless every part is valid. */
export function parseCredentialKey(key: string): CredentialKeyParts | undefined {
  if (Buffer.byteLength(key) > k.max_bytes || !key.startsWith(k.credential_prefix)) return undefined;
  const regionStart = key.lastIndexOf(k.separator);
  const serviceStart = key.lastIndexOf(k.separator, regionStart - 1);
  if (serviceStart <= k.credential_prefix.length) return undefined;
  const identity = parseAgentSpiffeId(key.slice(k.credential_prefix.length, serviceStart));
  const service = key.slice(serviceStart + 1, regionStart);
  const region = key.slice(regionStart + 1);
  if (!identity || !isServiceName(service) || !isRegion(region)) return undefined;
  return { identity, service, region };
}

export function isCredentialKey(key: string): boolean {
  return parseCredentialKey(key) !== undefined;
}

/** The raw contract, for the AssemblyScript generator and for tests that check it as data. */
export const CONTRACT: Readonly<ContractFile> = contract;

/** Hexr Vault's paths and limits (docs/vault-api.md). */
export const VAULT = {
  secretsPath: contract.vault.secrets_path,
  auditPath: contract.vault.audit_path,
  batchName: contract.vault.batch_name,
  maxValueBytes: contract.vault.max_value_bytes,
  maxBatchNames: contract.vault.max_batch_names,
} as const;

const SECRET_NAME = new RegExp(
  `^${regexClass(contract.vault.name.first)}${regexClass(contract.vault.name.chars)}{${contract.vault.name.min - 1},${contract.vault.name.max - 1}}$`,
);

/** A secret's name: letters, digits, `_`, `.` and `-`, starting with a letter or digit, 1 to 128 characters. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** A provider of the sidecar's LLM route, by the name its path uses (`/v1/llm/{name}/...`). */
export type LlmProviderName = "openai" | "anthropic" | "azure_openai";
const KNOWN_LLM_PROVIDERS: readonly LlmProviderName[] = ["openai", "anthropic", "azure_openai"];

/** One provider of the LLM route (contract.json `llm.providers`). */
export interface LlmProvider {
  readonly name: LlmProviderName;
  /** The catalog service whose credential the route puts on the request: `llm_openai`, or `azure_openai` (an Entra token). */
  readonly service: string;
  /** The request header that carries the credential upstream, and what goes before it (`Bearer `, or nothing). */
  readonly authHeader: string;
  readonly authPrefix: string;
  /**
   * The vault secret holding the provider's API key, read by the injector in the caller's
   * agent-level scope; null when the credential is not a key (azure_openai: the Azure exchange mints it).
   */
  readonly keySecret: string | null;
  /** Endpoint paths under `{path}/{name}` the route forwards (`{deployment}` is one path segment). */
  readonly endpoints: readonly string[];
}

/**
 * The sidecar's LLM egress route (contract.json `llm`): `{path}/{provider}{endpoint}`. The filter
 * resolves the provider's credential like any other (`cred:{spiffe-id}:{service}:{region}`, L1 → L2
 * → the injector); for an `llm_*` service the injector answers with `keyCredentials` fields: the API
 * key and the models OPA granted (the grant's scopes: `llm_openai:gpt-4o` → "gpt-4o"; "" = every model).
 */
export const LLM: Readonly<{
  path: string;
  usagePath: string;
  /**
   * The provider of the services whose credential is an API key from the vault (`llm`: llm_openai,
   * llm_anthropic), served through the LLM route only.
   */
  keyProvider: Provider;
  providers: Readonly<Record<LlmProviderName, LlmProvider>>;
  /** Headers an agent may have set with a key of its own: removed before the route sets `authHeader`. */
  agentKeyHeaders: readonly string[];
  /** Field names of an llm_* service's `credentials` in the injector's 200 body. */
  keyCredentials: Readonly<{ apiKey: string; models: string }>;
}> = {
  path: contract.llm.path,
  usagePath: contract.llm.usage_path,
  keyProvider: keyProviderOf(contract.llm.key_provider),
  providers: Object.fromEntries(
    Object.entries(withoutComments(contract.llm.providers)).map(([name, provider]) => [name, llmProviderEntry(name, provider)]),
  ) as Record<LlmProviderName, LlmProvider>,
  agentKeyHeaders: contract.llm.agent_key_headers,
  keyCredentials: { apiKey: contract.llm.key_credentials.api_key, models: contract.llm.key_credentials.models },
};

function keyProviderOf(provider: string): Provider {
  if (!(PROVIDERS as readonly string[]).includes(provider)) throw new Error("contract.json llm.key_provider must be one of providers");
  return provider as Provider;
}

/** Whether `service` is one whose credential is an API key read from the vault (`llm_openai`). */
export function isKeyService(service: string): boolean {
  return isServiceName(service) && providerOf(service) === LLM.keyProvider;
}

function llmProviderEntry(name: string, provider: LlmProviderFile): LlmProvider {
  if (!(KNOWN_LLM_PROVIDERS as readonly string[]).includes(name)) {
    throw new Error(`contract.json names LLM provider ${JSON.stringify(name)}, which contract/index.ts's LlmProviderName type does not know`);
  }
  if (!CATALOG.includes(provider.service)) throw new Error(`contract.json llm.providers.${name}.service is not in the catalog`);
  if (provider.key_secret !== null && !isSecretName(provider.key_secret)) {
    throw new Error(`contract.json llm.providers.${name}.key_secret is not a vault secret name`);
  }
  return {
    name: name as LlmProviderName,
    service: provider.service,
    authHeader: provider.auth_header,
    authPrefix: provider.auth_prefix,
    keySecret: provider.key_secret,
    endpoints: provider.endpoints,
  };
}

/** The LLM route's provider of that name (`openai`), or undefined. */
export function llmProvider(name: string): LlmProvider | undefined {
  return Object.hasOwn(LLM.providers, name) ? LLM.providers[name as LlmProviderName] : undefined;
}

/** The LLM provider whose credential is `service` (`llm_openai` → openai, `azure_openai` → azure_openai), or undefined. */
export function llmProviderOfService(service: string): LlmProvider | undefined {
  return Object.values(LLM.providers).find((provider) => provider.service === service);
}

/**
 * The vault secret holding the API key of an `llm_*` service (`llm_openai` → `OPENAI_API_KEY`);
 * undefined for any other service, and for an LLM provider whose credential is no key.
 */
export function llmKeySecret(service: string): string | undefined {
  return llmProviderOfService(service)?.keySecret ?? undefined;
}
