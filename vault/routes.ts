// The requests of docs/vault-api.md, from method and request target to a checked Route. Paths are
// matched exactly (no decoding, no normalisation: a name needs neither); query parameters are
// allowed per route, each at most once, so a typo is a 400 rather than silently ignored.
import { isSecretName, VAULT } from "../contract/index.ts";
import type { AuditOperation } from "./audit.ts";
import { badRequest, methodNotAllowed, noSuchEndpoint, type VaultError } from "./errors.ts";
import { requestedScope } from "./scope.ts";

export type Route =
  | { kind: "list" }
  | { kind: "put"; name: string; scope: string }
  | { kind: "get"; name: string; version: number | undefined }
  | { kind: "delete"; name: string }
  | { kind: "batch" }
  | { kind: "audit_list"; after: number; limit: number }
  | { kind: "audit_verify" };

/** What the request is, as far as it could be told: the audit record's operation and name even when the route is refused. */
export type Routed = { operation: AuditOperation; name: string | null } & ({ route: Route; error?: undefined } | { route?: undefined; error: VaultError });

export const AUDIT_PAGE = { default: 100, max: 1000 };
const VERSION = /^[1-9][0-9]{0,9}$/;
const MAX_VERSION = 2 ** 31 - 1;
const SEQ = /^(0|[1-9][0-9]{0,15})$/;
const LIMIT = /^[1-9][0-9]{0,3}$/;
const SECRET_PREFIX = `${VAULT.secretsPath}/`;

export function routeOf(method: string, target: string): Routed {
  const queryStart = target.indexOf("?");
  const path = queryStart < 0 ? target : target.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? "" : target.slice(queryStart + 1));

  if (path === VAULT.secretsPath) {
    return only(method, ["GET"], "list", null, () => noQuery(query, { kind: "list" }));
  }
  if (path === `${SECRET_PREFIX}${VAULT.batchName}`) {
    return only(method, ["POST"], "batch", null, () => noQuery(query, { kind: "batch" }));
  }
  if (path.startsWith(SECRET_PREFIX) && !path.slice(SECRET_PREFIX.length).includes("/")) {
    const segment = path.slice(SECRET_PREFIX.length);
    const name = isSecretName(segment) ? segment : null;
    const operation = ({ GET: "get", PUT: "put", DELETE: "delete" } as const)[method as "GET" | "PUT" | "DELETE"];
    if (!operation) return { operation: "unknown", name, error: methodNotAllowed(["GET", "PUT", "DELETE"]) };
    if (name === null) return { operation, name, error: badRequest("bad secret name: 1 to 128 of A-Z a-z 0-9 _ . -, starting with a letter or digit") };
    try {
      if (operation === "put") {
        const scope = requestedScope(param(query, "scope", ["scope"]));
        if (scope === undefined) throw badRequest('bad scope: a role (an agent SPIFFE ID path segment) or "*"');
        return { operation, name, route: { kind: "put", name, scope } };
      }
      if (operation === "get") {
        const raw = param(query, "version", ["version"]);
        if (raw !== undefined && (!VERSION.test(raw) || Number(raw) > MAX_VERSION)) throw badRequest("bad version: a positive integer");
        return { operation, name, route: { kind: "get", name, version: raw === undefined ? undefined : Number(raw) } };
      }
      return { operation, name, route: noQuery(query, { kind: "delete", name }) };
    } catch (error) {
      return { operation, name, error: error as VaultError };
    }
  }
  if (path === VAULT.auditPath) {
    return only(method, ["GET"], "audit_list", null, () => {
      const after = param(query, "after", ["after", "limit"]);
      const limit = param(query, "limit", ["after", "limit"]);
      if (after !== undefined && !SEQ.test(after)) throw badRequest("bad after: a record's seq (0 or more)");
      if (limit !== undefined && (!LIMIT.test(limit) || Number(limit) > AUDIT_PAGE.max)) throw badRequest(`bad limit: 1 to ${AUDIT_PAGE.max}`);
      return { kind: "audit_list", after: after === undefined ? 0 : Number(after), limit: limit === undefined ? AUDIT_PAGE.default : Number(limit) };
    });
  }
  if (path === `${VAULT.auditPath}/verify`) {
    return only(method, ["GET"], "audit_verify", null, () => noQuery(query, { kind: "audit_verify" }));
  }
  return { operation: "unknown", name: null, error: noSuchEndpoint() };
}

function only(method: string, allowed: string[], operation: AuditOperation, name: string | null, build: () => Route): Routed {
  if (!allowed.includes(method)) return { operation, name, error: methodNotAllowed(allowed) };
  try {
    return { operation, name, route: build() };
  } catch (error) {
    return { operation, name, error: error as VaultError };
  }
}

/** The one value of `name`, after checking that the query holds only `allowed` parameters, each once. */
function param(query: URLSearchParams, name: string, allowed: string[]): string | undefined {
  checkQuery(query, allowed);
  return query.get(name) ?? undefined;
}

function noQuery<T extends Route>(query: URLSearchParams, route: T): T {
  checkQuery(query, []);
  return route;
}

function checkQuery(query: URLSearchParams, allowed: string[]): void {
  const seen = new Set<string>();
  for (const key of query.keys()) {
    // The parameter's name is not echoed: a query is no place for a secret, but it may hold one by mistake.
    if (!allowed.includes(key)) throw badRequest(allowed.length ? `unknown query parameter: this request takes ${allowed.join(", ")}` : "this request takes no query parameters");
    if (seen.has(key)) throw badRequest(`query parameter ${key} may appear once`);
    seen.add(key);
  }
}
