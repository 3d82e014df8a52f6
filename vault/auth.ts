// Who is asking, in two layers.
//
// 1. The mTLS caller: every connection presents a client certificate that chains to the trust
//    bundle (the TLS server refuses anything else at the handshake), and it must be an X.509-SVID
//    that a caller rule lists. Callers are Envoy sidecars: spiffe://{td}/sidecar/{tenant}/{pod}.
// 2. The identity the caller asserts in x-hexr-spiffe-id (its exchange filter sets it from what
//    Envoy verified, after dropping every client x-hexr-* header): an agent SPIFFE ID of a trusted
//    trust domain (the caller's own, unless its rule names others), in a tenant the caller's rule
//    lists. So a sidecar of tenant A never names an agent of tenant B, whatever its agent does.
//    When the agent authenticated with a JWT-SVID, the sidecar forwards it (authorization: Bearer)
//    and the vault verifies it too, requiring its `sub` to be that identity, so a token stolen
//    from one agent cannot be replayed as another. (An agent that used its X.509-SVID sends no
//    token: then the sidecar's word, bounded by its tenants, is all there is.)
//
// Admins (the audit endpoints) must be listed in `admins` and present their own JWT-SVID: a
// sidecar's word alone never reaches the audit log.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { HEADERS, parseAgentSpiffeId, parseSpiffeId, type AgentSpiffeId } from "../contract/index.ts";
import type { CallerRule, VaultConfig } from "./config.ts";
import { denied, unauthenticated, untrustedCaller } from "./errors.ts";
import type { JwtSvidVerifier } from "../spiffe/jwt-svid.ts";

export interface Caller {
  /** The SPIFFE ID of the client certificate. */
  id: string;
  trustDomain: string;
  /** The rules that list it (at least one). */
  rules: readonly CallerRule[];
}

/** Request headers as Node's headersDistinct gives them: every value of a repeated header. */
export type HeadersDistinct = Readonly<Record<string, string[] | undefined>>;

export interface Identity {
  agent: AgentSpiffeId;
  /** How the agent proved itself to its sidecar (x-hexr-identity-source). */
  source: "mtls" | "jwt";
  /** The agent's own JWT-SVID was forwarded and verified here. */
  tokenVerified: boolean;
}

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

/**
 * The SPIFFE ID of the verified client certificate. The server requires one that chains to the
 * trust bundle, so this fails only for a certificate that is no X.509-SVID (no or several URI SANs).
 */
export function callerSpiffeId(socket: Socket): string {
  const tls = socket as Partial<TLSSocket>;
  const certificate = typeof tls.getPeerCertificate === "function" ? tls.getPeerCertificate() : undefined;
  if (!certificate || Object.keys(certificate).length === 0 || !tls.authorized) {
    throw unauthenticated("a client certificate from the trust bundle is required");
  }
  const uris = (certificate.subjectaltname ?? "")
    .split(", ")
    .filter((name) => name.startsWith("URI:"))
    .map((name) => name.slice("URI:".length));
  if (uris.length !== 1 || !parseSpiffeId(uris[0])) throw unauthenticated("the client certificate is not an X.509-SVID");
  return uris[0];
}

export class Authenticator {
  constructor(
    private readonly config: Pick<VaultConfig, "caller_rules" | "trust_domains" | "admins">,
    private readonly verifier: JwtSvidVerifier,
  ) {}

  /** The caller with the rules that list it; 403 when none does. */
  caller(id: string): Caller {
    const parsed = parseSpiffeId(id)!;
    const rules = this.config.caller_rules.filter((rule) => matches(rule.spiffe_id, id));
    if (rules.length === 0 || !this.config.trust_domains.includes(parsed.trustDomain)) {
      throw untrustedCaller(`caller ${id} is not one the vault trusts (caller_rules)`);
    }
    return { id, trustDomain: parsed.trustDomain, rules };
  }

  /** The identity the caller asserts, checked against its rules and, when forwarded, the agent's own JWT-SVID. */
  async identity(headers: HeadersDistinct, caller: Caller): Promise<Identity> {
    const claimed = single(headers, HEADERS.spiffe_id);
    if (claimed === undefined) throw unauthenticated(`no verified identity: ${HEADERS.spiffe_id} is required (the sidecar sets it)`);
    const agent = parseAgentSpiffeId(claimed);
    if (!agent) throw unauthenticated(`${HEADERS.spiffe_id} is not an agent SPIFFE ID`);
    const source = single(headers, HEADERS.identity_source);
    if (source === "static") throw denied("secrets are served only to an agent that proved its own identity (not a sidecar's static identity)");
    if (source !== "mtls" && source !== "jwt") throw unauthenticated(`${HEADERS.identity_source} must be mtls or jwt`);
    if (!this.config.trust_domains.includes(agent.trustDomain)) throw untrustedCaller(`trust domain ${agent.trustDomain} is not trusted`);
    const rules = caller.rules.filter((rule) =>
      rule.trust_domains === null ? agent.trustDomain === caller.trustDomain : rule.trust_domains.includes("*") || rule.trust_domains.includes(agent.trustDomain));
    if (rules.length === 0) throw untrustedCaller(`caller ${caller.id} may not assert identities of trust domain ${agent.trustDomain}`);
    if (!rules.some((rule) => rule.tenants.includes("*") || rule.tenants.includes(agent.tenant))) {
      throw untrustedCaller(`caller ${caller.id} may not assert identities of tenant ${agent.tenant}`);
    }
    for (const part of ["tenant", "agent", "role"] as const) {
      const value = single(headers, HEADERS[part]);
      if (value !== undefined && value !== agent[part]) throw unauthenticated(`${HEADERS[part]} does not match ${HEADERS.spiffe_id}`);
    }
    const authorization = single(headers, "authorization");
    if (authorization === undefined) {
      // The filter forwards the agent's token whenever it verified one.
      if (source === "jwt") throw unauthenticated("the identity came from a JWT-SVID, but none was forwarded in authorization: Bearer");
      return { agent, source, tokenVerified: false };
    }
    const token = BEARER.exec(authorization)?.[1];
    if (!token) throw unauthenticated("authorization must be Bearer <JWT-SVID>");
    const verified = await this.verifier.verify(token);
    if (verified.spiffeId !== agent.spiffeId) throw unauthenticated(`JWT-SVID subject does not match ${HEADERS.spiffe_id}`);
    return { agent, source, tokenVerified: true };
  }

  /** Admins only, each with its own verified JWT-SVID. */
  requireAdmin(identity: Identity): void {
    if (!this.config.admins.includes(identity.agent.spiffeId)) throw denied("only the vault's admins may read the audit log");
    if (!identity.tokenVerified) throw unauthenticated("the audit log needs the admin's own JWT-SVID in authorization: Bearer");
  }
}

/** One value, or undefined; a header sent twice is refused (two identities, two tokens: which one?). */
function single(headers: HeadersDistinct, name: string): string | undefined {
  const values = headers[name];
  if (values === undefined || values.length === 0) return undefined;
  if (values.length > 1) throw unauthenticated(`${name} must be sent once`);
  return values[0];
}

/** `pattern` is exact, or ends in "/*": then every ID under that path (the "/" kept, so a/b/* never matches a/bc). */
function matches(pattern: string, spiffeId: string): boolean {
  return pattern.endsWith("/*") ? spiffeId.startsWith(pattern.slice(0, -1)) : spiffeId === pattern;
}
