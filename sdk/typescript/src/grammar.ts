// The contract's grammars (service, region, agent SPIFFE ID) built from the generated data, so the
// SDK refuses exactly what the sidecar, the injector and the bridge refuse (contract/vectors.json).
import { CATALOG, DEFAULT_REGIONS, ERRORS, GRAMMAR, PROVIDERS, REGIONS, VAULT } from "./contract.ts";

export type Provider = (typeof PROVIDERS)[number];
/** The 13 services of the catalog. */
export type CatalogService = (typeof CATALOG)[number];

/** Expands a class such as "a-z0-9_-" (ranges, then single characters) into a RegExp class. */
function regexClass(spec: string): string {
  const chars: string[] = [];
  for (let i = 0; i < spec.length; i++) {
    if (i + 2 < spec.length && spec[i + 1] === "-") {
      for (let c = spec.charCodeAt(i); c <= spec.charCodeAt(i + 2); c++) chars.push(String.fromCharCode(c));
      i += 2;
    } else {
      chars.push(spec[i]);
    }
  }
  return "[" + chars.map((c) => c.replace(/[\\\]^-]/g, "\\$&")).join("") + "]";
}

const s = GRAMMAR.service;
const SERVICE = new RegExp(
  `^(?:${PROVIDERS.join("|")})${s.separator}${regexClass(s.name_first)}${regexClass(s.name_rest)}{0,${s.name_max - 1}}$`,
);
const REGION = new RegExp(`^${regexClass(GRAMMAR.region.chars)}{${GRAMMAR.region.min},${GRAMMAR.region.max}}$`);
const TRUST_DOMAIN = new RegExp(`^${regexClass(GRAMMAR.trust_domain.chars)}{${GRAMMAR.trust_domain.min},${GRAMMAR.trust_domain.max}}$`);
const PATH_SEGMENT = new RegExp(`^${regexClass(GRAMMAR.path_segment.chars)}{${GRAMMAR.path_segment.min},${GRAMMAR.path_segment.max}}$`);
const SECRET_NAME = new RegExp(`^${regexClass(VAULT.name.first)}${regexClass(VAULT.name.chars)}{${VAULT.name.min - 1},${VAULT.name.max - 1}}$`);

/** `{provider}_{name}`: the shape of every service name, catalogued or not. */
export function isServiceName(value: string): boolean {
  return SERVICE.test(value);
}

export function isCatalogService(value: string): value is CatalogService {
  return (CATALOG as readonly string[]).includes(value);
}

export function isRegion(value: string): boolean {
  return REGION.test(value);
}

export function providerOf(service: string): Provider {
  return service.slice(0, service.indexOf(s.separator)) as Provider;
}

export function defaultRegion(provider: Provider): string {
  return DEFAULT_REGIONS[provider];
}

/** Whether the provider serves the region (the contract's list; the sidecar may narrow it). */
export function isServedRegion(provider: Provider, region: string): boolean {
  return (REGIONS[provider] as readonly string[]).includes(region);
}

/** One segment of an agent SPIFFE ID (tenant, agent, role): 1 to 128 of A-Za-z0-9._-, not "." or "..". */
export function isPathSegment(value: string | undefined): value is string {
  return value !== undefined && PATH_SEGMENT.test(value) && !(GRAMMAR.path_segment.forbidden as readonly string[]).includes(value);
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
  const id = GRAMMAR.agent_spiffe_id;
  if (Buffer.byteLength(value) > id.max || !value.startsWith(id.scheme)) return undefined;
  const [trustDomain, kind, tenant, agent, role, ...rest] = value.slice(id.scheme.length).split("/");
  if (rest.length > 0 || kind !== id.kind || trustDomain === undefined || !TRUST_DOMAIN.test(trustDomain)) return undefined;
  if (!isPathSegment(tenant) || !isPathSegment(agent) || !isPathSegment(role)) return undefined;
  return { spiffeId: value, trustDomain, tenant, agent, role };
}

export type ErrorType = (typeof ERRORS.types)[number];
export const ERROR_STATUSES: Readonly<Record<ErrorType, readonly number[]>> = ERRORS.statuses;

/**
 * A vault secret's name (contract.json vault.name): 1 to 128 of A-Za-z0-9_.-, starting with
 * A-Za-z0-9, so that it is always one URL path segment and never the batch route (`_batch`).
 */
export function isSecretName(value: unknown): value is string {
  return typeof value === "string" && SECRET_NAME.test(value);
}
