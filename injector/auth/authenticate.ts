// Who is asking. Normally the agent, proven by its JWT-SVID, which must be exactly the identity the
// filter resolved (x-hexr-spiffe-id and its parts), relayed by an mTLS peer allowed to speak for
// that agent's tenant. The one exception is an identity the sidecar asserts itself (identity
// source `static`: its metadata listeners, whose stock-SDK protocols carry no caller credential):
// no JWT-SVID then, and only an mTLS caller a rule lists for that very identity is believed.
import type { IncomingHttpHeaders } from "node:http";
import { HEADERS, IDENTITY_SOURCES, parseAgentSpiffeId, type AgentSpiffeId } from "../../contract/index.ts";
import { unauthenticated } from "../errors.ts";
import { singleHeader } from "../headers.ts";
import type { CallerPolicy } from "./caller.ts";
import type { JwtSvidVerifier } from "../../spiffe/jwt-svid.ts";

export interface AuthenticatedRequest {
  identity: AgentSpiffeId;
  /**
   * How the agent proved that identity. Kept for the one exchange that must prove it again: an
   * llm_* key is read from Hexr Vault on the agent's behalf, and the vault verifies the agent's
   * JWT-SVID itself (vault/auth.ts) rather than take the injector's word for whose scope to open.
   * ExchangeService hands it only to an exchange that acts for the agent (CloudExchange.actsForAgent);
   * a cloud exchange never sees it, and it is never logged.
   */
  proof: AgentProof;
}

export interface AgentProof {
  /**
   * `static`: the sidecar asserted the identity (no token). Otherwise how the agent reached its
   * sidecar (x-hexr-identity-source: `mtls` or `jwt`; `jwt` when the filter did not say).
   */
  source: "mtls" | "jwt" | "static";
  /** The agent's JWT-SVID, verified here; null for a static identity. */
  jwtSvid: string | null;
}

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;
const STATIC_SOURCE: (typeof IDENTITY_SOURCES)[number] = "static";

export class Authenticator {
  constructor(
    private readonly verifier: JwtSvidVerifier,
    private readonly callers: CallerPolicy,
  ) {}

  /** `caller`: the verified SPIFFE ID of the mTLS client (caller.ts callerSpiffeId), undefined without one. */
  async authenticate(headers: IncomingHttpHeaders, caller: string | undefined): Promise<AuthenticatedRequest> {
    const source = singleHeader(headers, HEADERS.identity_source);
    const { identity, proof } = source === STATIC_SOURCE
      ? { identity: this.assertedIdentity(headers, caller), proof: { source: STATIC_SOURCE, jwtSvid: null } }
      : await this.verifiedIdentity(headers, caller, source === "mtls" ? "mtls" : "jwt");
    for (const part of ["tenant", "agent", "role"] as const) {
      const value = singleHeader(headers, HEADERS[part]);
      if (value !== undefined && value !== identity[part]) throw unauthenticated(`${HEADERS[part]} does not match the SPIFFE ID`);
    }
    return { identity, proof };
  }

  /**
   * The agent's JWT-SVID, verified here again, names the identity; the caller, if any, must be
   * allowed to relay for its tenant. The JWT-SVID is for the sidecar and the injector only: it
   * proves who asks, and goes no further.
   */
  private async verifiedIdentity(
    headers: IncomingHttpHeaders,
    caller: string | undefined,
    source: "mtls" | "jwt",
  ): Promise<AuthenticatedRequest> {
    const jwtSvid = BEARER.exec(headers.authorization ?? "")?.[1];
    if (!jwtSvid) throw unauthenticated("a JWT-SVID is required in Authorization: Bearer");
    const claimed = requiredSpiffeId(headers);
    const identity = await this.verifier.verify(jwtSvid);
    if (identity.spiffeId !== claimed) throw unauthenticated(`JWT-SVID subject does not match ${HEADERS.spiffe_id}`);
    if (caller) this.callers.check(caller, identity);
    return { identity, proof: { source, jwtSvid } };
  }

  /**
   * The sidecar's own word: believed only over mTLS, from a caller a rule lets assert exactly this
   * identity. A static request with an Authorization header is refused rather than verified: a
   * static identity comes from the sidecar's configuration, so a token beside it could only be
   * someone's attempt to mix two identities (and the filter sends none with it).
   */
  private assertedIdentity(headers: IncomingHttpHeaders, caller: string | undefined): AgentSpiffeId {
    if (headers.authorization !== undefined) {
      throw unauthenticated("a static identity is asserted by the sidecar alone: send no Authorization header with it");
    }
    if (!caller) throw unauthenticated("a static identity is accepted only over mTLS, from a caller allowed to assert it");
    const identity = parseAgentSpiffeId(requiredSpiffeId(headers));
    if (!identity) throw unauthenticated(`${HEADERS.spiffe_id} is not an agent SPIFFE ID`);
    // The rules list only agent IDs of trusted trust domains (config.ts), so a listed identity is one.
    this.callers.checkAssertion(caller, identity.spiffeId);
    return identity;
  }
}

function requiredSpiffeId(headers: IncomingHttpHeaders): string {
  const claimed = singleHeader(headers, HEADERS.spiffe_id);
  if (!claimed) throw unauthenticated(`${HEADERS.spiffe_id} is required`);
  return claimed;
}
