// Who may do what, as pure functions (no I/O): every access decision of the vault is made here and
// tested exhaustively (vault/test/scope.test.ts).
//
// The caller's SPIFFE ID spiffe://{td}/agent/{tenant}/{agent}/{role} fixes its namespace,
// (td, tenant, agent): the only secrets it can name at all. The store is keyed by namespace, so
// another agent's or tenant's secret of the same name is a different row the caller cannot reach,
// and a probe for it looks exactly like a probe for a name that exists nowhere (404).
//
// Inside the namespace each secret has one scope, fixed at creation: "*" (every role of the agent)
// or one role. A caller outside a secret's scope may neither read, overwrite nor delete it (403);
// nor may it create a secret in a scope it is outside of (that would be a write into another role's
// secrets, e.g. planting the researcher's database URL). A put that names another scope than the
// existing secret's is refused (409) rather than silently widening or narrowing who may read it.
import { isPathSegment, type AgentSpiffeId } from "../contract/index.ts";

/** Agent-level: every role of the agent. */
export const AGENT_SCOPE = "*";

export interface Namespace {
  readonly trustDomain: string;
  readonly tenant: string;
  readonly agent: string;
}

export function namespaceOf(identity: AgentSpiffeId): Namespace {
  return { trustDomain: identity.trustDomain, tenant: identity.tenant, agent: identity.agent };
}

/** "*" or a role (an agent SPIFFE ID's path segment). */
export function isScope(value: string): boolean {
  return value === AGENT_SCOPE || isPathSegment(value);
}

/** The scope a put asks for: `?scope=ROLE`, `?scope=*`, or absent, which means agent-level. */
export function requestedScope(raw: string | undefined): string | undefined {
  if (raw === undefined) return AGENT_SCOPE;
  return isScope(raw) ? raw : undefined;
}

/** Whether `role` of the namespace's agent is inside `scope`. */
export function includes(scope: string, role: string): boolean {
  return scope === AGENT_SCOPE || scope === role;
}

/** The SPIFFE ID (pattern) a scope stands for: spiffe://{td}/agent/{tenant}/{agent}/{role or *}. */
export function scopeSpiffeId(namespace: Namespace, scope: string): string {
  return `spiffe://${namespace.trustDomain}/agent/${namespace.tenant}/${namespace.agent}/${scope}`;
}

export type PutDecision =
  | { kind: "create" }
  | { kind: "update" }
  | { kind: "denied" }
  | { kind: "conflict"; existing: string };

/**
 * A put of scope `requested` by `role`, onto a secret that has scope `existing` (undefined: no
 * such secret yet). Denied before conflict: a caller outside the secret learns nothing more from a
 * put than from a get.
 */
export function decidePut(existing: string | undefined, requested: string, role: string): PutDecision {
  if (existing === undefined) return includes(requested, role) ? { kind: "create" } : { kind: "denied" };
  if (!includes(existing, role)) return { kind: "denied" };
  if (requested !== existing) return { kind: "conflict", existing };
  return { kind: "update" };
}

/** Read (get, batch), delete and list all follow the one rule: the caller's role is inside the scope. */
export const mayRead = includes;
export const mayDelete = includes;
export const isListed = includes;
