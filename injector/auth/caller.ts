// Who is on the other end of the mTLS connection (normally an Envoy sidecar presenting its own
// X.509-SVID), whether it may relay an agent's JWT-SVID for a given tenant, and whether it may
// assert an identity on its own word (identity source `static`, with no JWT-SVID at all).
import type { TLSSocket } from "node:tls";
import type { Socket } from "node:net";
import { parseSpiffeId, type AgentSpiffeId } from "../../contract/index.ts";
import type { CallerRule } from "../config.ts";
import { unauthenticated } from "../errors.ts";

/** Kinds of workload whose SPIFFE ID path starts /{kind}/{tenant}/ and so speaks for that tenant. */
const TENANT_SCOPED_KINDS = new Set(["sidecar", "agent"]);

/**
 * The SPIFFE ID of the verified client certificate; undefined when the connection is plain HTTP
 * or no certificate was presented. A certificate that failed verification, or carries no single
 * SPIFFE URI SAN, is rejected outright.
 */
export function callerSpiffeId(socket: Socket): string | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== "function") return undefined;
  const certificate = tls.getPeerCertificate();
  if (!certificate || Object.keys(certificate).length === 0) return undefined;
  if (!tls.authorized) throw unauthenticated("client certificate is not signed by a trusted CA");
  const uris = (certificate.subjectaltname ?? "")
    .split(", ")
    .filter((name) => name.startsWith("URI:"))
    .map((name) => name.slice("URI:".length));
  if (uris.length !== 1 || !parseSpiffeId(uris[0])) throw unauthenticated("client certificate is not an X.509-SVID");
  return uris[0];
}

export class CallerPolicy {
  constructor(private readonly rules: readonly CallerRule[]) {}

  /** Throws a 401 unless `caller` may speak for `agent`'s tenant. */
  check(caller: string, agent: AgentSpiffeId): void {
    if (this.sameTenant(caller, agent) || this.rules.some((rule) => allows(rule, caller, agent.tenant))) return;
    throw unauthenticated(`caller ${caller} may not request credentials for tenant ${agent.tenant}`);
  }

  /**
   * Throws a 401 unless a rule lists `spiffeId` among the identities `caller` may assert without a
   * JWT-SVID. Same-tenant callers get no such right: a sidecar speaks for its agents' tokens, but
   * only configuration says which identities it may vouch for alone.
   */
  checkAssertion(caller: string, spiffeId: string): void {
    const allowed = this.rules.some((rule) => matches(rule.spiffe_id, caller) && rule.static_identities.some((pattern) => matches(pattern, spiffeId)));
    if (!allowed) throw unauthenticated(`caller ${caller} may not assert this static identity (caller_rules static_identities)`);
  }

  private sameTenant(caller: string, agent: AgentSpiffeId): boolean {
    const parsed = parseSpiffeId(caller);
    if (!parsed || parsed.trustDomain !== agent.trustDomain || parsed.segments.length < 2) return false;
    const [kind, tenant] = parsed.segments;
    return TENANT_SCOPED_KINDS.has(kind) && tenant === agent.tenant;
  }
}

function allows(rule: CallerRule, caller: string, tenant: string): boolean {
  return matches(rule.spiffe_id, caller) && (rule.tenants.includes("*") || rule.tenants.includes(tenant));
}

/** `pattern` is exact, or ends in "/*": then every ID under that path (the "/" kept, so a/b/* never matches a/bc). */
function matches(pattern: string, spiffeId: string): boolean {
  return pattern.endsWith("/*") ? spiffeId.startsWith(pattern.slice(0, -1)) : spiffeId === pattern;
}
