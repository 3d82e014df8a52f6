// Who may use the bridge, and for what: the access file (`--access-file`), documented in
// bridge/README.md ("Who may call"). Loading validates every field, so a mistake stops the
// bridge at startup with a message naming the field instead of letting a request through later.
//
//   {
//     "callers": [
//       { "spiffe_id": "spiffe://hexr.local/sidecar/acme-corp/*", "tenants": ["acme-corp"] },
//       { "spiffe_id": "spiffe://hexr.local/hexr-system/credential-injector", "tenants": ["*"] }
//     ],
//     "admins": ["spiffe://hexr.local/agent/acme-corp/platform/admin"],
//     "jwt": { "jwks_file": "jwks.json", "audience": ["hexr-credential-injector"], "issuer": "https://oidc.hexr.local" }
//   }
import { readFileSync } from "node:fs";
import path from "node:path";
import { isPathSegment, isTrustDomain, parseSpiffeId } from "../../contract/index.ts";

/** The same shape as the injector's `caller_rules`, plus the trust domains of the keys. */
export interface CallerRule {
  /** An exact SPIFFE ID, or a prefix ending in "/*" that matches every ID below it. */
  spiffe_id: string;
  /** Tenants whose credential keys (and their exchange locks) the caller may read and write; "*" = every tenant. */
  tenants: string[];
  /** Trust domains of those keys; absent = the caller's own trust domain only; "*" = any. */
  trust_domains?: string[];
}

export interface AdminJwtConfig {
  /** JWKS or SPIFFE bundle file with the JWT-SVID signing keys (re-read when an unknown key ID shows up). */
  jwks_file: string;
  /** Accepted `aud` values: at least one must be in the token. */
  audience: string[];
  /** Required `iss`, when set. */
  issuer?: string;
  clock_tolerance_seconds: number;
}

export interface AccessConfig {
  callers: CallerRule[];
  /** SPIFFE IDs whose JWT-SVID (forwarded by a sidecar) may purge and record revocations. */
  admins: string[];
  /** How admins' JWT-SVIDs are verified; required when `admins` is not empty. */
  jwt: AdminJwtConfig | null;
}

export class AccessConfigError extends Error {
  constructor(field: string, problem: string) {
    super(`access config: ${field} ${problem}`);
  }
}

/** Reads and validates an access file; a relative `jwt.jwks_file` is relative to the file. */
export function loadAccessFile(file: string): AccessConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new AccessConfigError(file, `is not readable JSON: ${(error as Error).message}`);
  }
  return parseAccessConfig(raw, path.dirname(path.resolve(file)));
}

/** Validates an access config object (the file's JSON shape). */
export function parseAccessConfig(raw: unknown, baseDir: string = process.cwd()): AccessConfig {
  const root = object(raw, "(root)", ["callers", "admins", "jwt"]);
  const callers = list(root.callers, "callers").map((rule, i) => parseCallerRule(rule, `callers[${i}]`));
  if (callers.length === 0) throw new AccessConfigError("callers", "must name at least one caller");
  const admins = root.admins === undefined ? [] : list(root.admins, "admins").map((id, i) => adminId(id, `admins[${i}]`));
  const jwt = root.jwt === undefined || root.jwt === null ? null : parseJwt(root.jwt, baseDir);
  if (admins.length > 0 && !jwt) throw new AccessConfigError("jwt", "is required when admins are configured");
  return { callers, admins, jwt };
}

function parseCallerRule(raw: unknown, field: string): CallerRule {
  const rule = object(raw, field, ["spiffe_id", "tenants", "trust_domains"]);
  const spiffeId = rule.spiffe_id;
  const pattern = typeof spiffeId === "string" && spiffeId.endsWith("/*") ? spiffeId.slice(0, -2) : spiffeId;
  if (typeof pattern !== "string" || !parseSpiffeId(pattern)) {
    throw new AccessConfigError(`${field}.spiffe_id`, 'must be a SPIFFE ID, or one followed by "/*"');
  }
  const tenants = strings(rule.tenants, `${field}.tenants`, (t) => t === "*" || isPathSegment(t), "tenant names or \"*\"");
  const parsed: CallerRule = { spiffe_id: spiffeId as string, tenants };
  if (rule.trust_domains !== undefined) {
    parsed.trust_domains = strings(rule.trust_domains, `${field}.trust_domains`, (d) => d === "*" || isTrustDomain(d), 'trust domains or "*"');
  }
  return parsed;
}

function adminId(raw: unknown, field: string): string {
  const id = typeof raw === "string" ? parseSpiffeId(raw) : undefined;
  if (!id || id.segments.length === 0) throw new AccessConfigError(field, "must be a workload SPIFFE ID");
  return id.id;
}

function parseJwt(raw: unknown, baseDir: string): AdminJwtConfig {
  const jwt = object(raw, "jwt", ["jwks_file", "audience", "issuer", "clock_tolerance_seconds"]);
  if (typeof jwt.jwks_file !== "string" || jwt.jwks_file === "") throw new AccessConfigError("jwt.jwks_file", "must be a file path");
  const audience = typeof jwt.audience === "string" ? [jwt.audience] : jwt.audience;
  const config: AdminJwtConfig = {
    jwks_file: path.resolve(baseDir, jwt.jwks_file),
    audience: strings(audience, "jwt.audience", (a) => a.length > 0, "non-empty strings"),
    clock_tolerance_seconds: 5,
  };
  if (jwt.issuer !== undefined) {
    if (typeof jwt.issuer !== "string" || jwt.issuer === "") throw new AccessConfigError("jwt.issuer", "must be a non-empty string");
    config.issuer = jwt.issuer;
  }
  if (jwt.clock_tolerance_seconds !== undefined) {
    const seconds = jwt.clock_tolerance_seconds;
    if (!Number.isInteger(seconds) || (seconds as number) < 0 || (seconds as number) > 300) {
      throw new AccessConfigError("jwt.clock_tolerance_seconds", "must be an integer from 0 to 300");
    }
    config.clock_tolerance_seconds = seconds as number;
  }
  return config;
}

function object(raw: unknown, field: string, known: string[]): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new AccessConfigError(field, "must be a JSON object");
  const unknown = Object.keys(raw).filter((key) => !known.includes(key));
  if (unknown.length > 0) throw new AccessConfigError(field, `has unknown fields: ${unknown.join(", ")}`);
  return raw as Record<string, unknown>;
}

function list(raw: unknown, field: string): unknown[] {
  if (!Array.isArray(raw)) throw new AccessConfigError(field, "must be a list");
  return raw;
}

function strings(raw: unknown, field: string, valid: (value: string) => boolean, what: string): string[] {
  const values = list(raw, field);
  if (values.length === 0 || !values.every((v) => typeof v === "string" && valid(v))) {
    throw new AccessConfigError(field, `must be a non-empty list of ${what}`);
  }
  return values as string[];
}
