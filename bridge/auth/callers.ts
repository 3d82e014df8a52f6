// Who is on the other end of the TLS connection, and which credential keys it may use.
//
// A caller is the SPIFFE ID in the client certificate the TLS handshake verified against the trust
// bundle (an X.509-SVID: exactly one URI SAN). The access file's `callers` rules name which IDs
// may use the bridge at all and, for each, the tenants (and trust domains) whose credential keys
// and exchange locks it may read and write. An ID no rule names (an agent's own SVID, a workload
// of another system) is known but refused everything.
import type { TLSSocket } from "node:tls";
import { parseSpiffeId, type AgentSpiffeId, type SpiffeId } from "../../contract/index.ts";
import type { CallerRule } from "./access-config.ts";

/** A verified caller and what the rules grant it; `grants` is empty when no rule names it. */
export interface Caller {
  readonly spiffeId: SpiffeId;
  readonly grants: readonly Grant[];
}

interface Grant {
  /** undefined = every tenant. */
  tenants: ReadonlySet<string> | undefined;
  /** undefined = every trust domain. */
  trustDomains: ReadonlySet<string> | undefined;
}

/** Why a connection has no caller: the bridge answers 401 with this. */
export type NoCaller = { reason: string };

/**
 * The verified client certificate's SPIFFE ID, or why there is none. Node has already checked the
 * chain against the trust bundle (`authorized`); the certificate must carry exactly one URI SAN and
 * it must be a workload's SPIFFE ID (not a trust domain's).
 */
export function peerSpiffeId(socket: TLSSocket): SpiffeId | NoCaller {
  const certificate = socket.getPeerCertificate();
  if (!certificate || Object.keys(certificate).length === 0) {
    return { reason: "a client certificate (X.509-SVID) is required" };
  }
  if (!socket.authorized) return { reason: "the client certificate is not issued by a trusted CA" };
  const uris = (certificate.subjectaltname ?? "")
    .split(", ")
    .filter((name) => name.startsWith("URI:"))
    .map((name) => name.slice("URI:".length));
  const id = uris.length === 1 ? parseSpiffeId(uris[0]) : undefined;
  if (!id || id.segments.length === 0) return { reason: "the client certificate is not an X.509-SVID" };
  return id;
}

export class CallerPolicy {
  constructor(private readonly rules: readonly CallerRule[]) {}

  /** What the rules grant `id` (the union over every rule that names it). */
  callerFor(id: SpiffeId): Caller {
    const grants = this.rules.filter((rule) => names(rule, id.id)).map((rule): Grant => ({
      tenants: rule.tenants.includes("*") ? undefined : new Set(rule.tenants),
      trustDomains: rule.trust_domains?.includes("*") ? undefined : new Set(rule.trust_domains ?? [id.trustDomain]),
    }));
    return { spiffeId: id, grants };
  }
}

/** Whether `caller` may read and write credential keys (and their locks) of `identity`. */
export function mayUseKeysOf(caller: Caller, identity: AgentSpiffeId): boolean {
  return caller.grants.some(
    (grant) =>
      (grant.trustDomains === undefined || grant.trustDomains.has(identity.trustDomain)) &&
      (grant.tenants === undefined || grant.tenants.has(identity.tenant)),
  );
}

/** "spiffe://td/sidecar/acme/*" names every ID below spiffe://td/sidecar/acme/, never that ID itself. */
function names(rule: CallerRule, id: string): boolean {
  return rule.spiffe_id.endsWith("/*") ? id.startsWith(rule.spiffe_id.slice(0, -1)) : id === rule.spiffe_id;
}
