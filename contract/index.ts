// The shared contract for the TypeScript components (injector, bridge, stack, tests), read from
// contract.json: the one definition of the catalog, the grammars, the key formats, the error types
// and the header names. The filter gets the same facts as AssemblyScript constants generated from
// the same file (scripts/generate-contract.ts).
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
  headers: Record<string, string>;
  cache_tiers: string[];
  identity_sources: string[];
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

export const PROVIDERS = contract.providers as readonly ("aws" | "gcp" | "azure")[];
export type Provider = (typeof PROVIDERS)[number];
export const CATALOG: readonly string[] = contract.catalog;
export const DEFAULT_REGIONS = contract.default_regions as Readonly<Record<Provider, string>>;
/** The regions each provider serves: the only ones an exchange may name. */
export const REGIONS: Readonly<Record<Provider, readonly string[]>> = {
  aws: contract.regions.aws,
  gcp: contract.regions.gcp,
  azure: contract.regions.azure,
};

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
