// Who is asking: the agent, proven by its JWT-SVID, must be exactly the identity the filter
// resolved (x-hexr-spiffe-id and its parts), and the mTLS peer must be allowed to relay for it.
import type { IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { HEADERS, type AgentSpiffeId } from "../../contract/index.ts";
import { unauthenticated } from "../errors.ts";
import { singleHeader } from "../headers.ts";
import { CallerPolicy, callerSpiffeId } from "./caller.ts";
import type { JwtSvidVerifier } from "./jwt-svid.ts";

export interface AuthenticatedRequest {
  identity: AgentSpiffeId;
  /** SPIFFE ID of the mTLS client (the sidecar), when the connection has one. */
  caller: string | undefined;
}

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

export class Authenticator {
  constructor(
    private readonly verifier: JwtSvidVerifier,
    private readonly callers: CallerPolicy,
  ) {}

  async authenticate(headers: IncomingHttpHeaders, socket: Socket): Promise<AuthenticatedRequest> {
    const caller = callerSpiffeId(socket);
    const jwtSvid = BEARER.exec(headers.authorization ?? "")?.[1];
    if (!jwtSvid) throw unauthenticated("a JWT-SVID is required in Authorization: Bearer");
    const claimed = singleHeader(headers, HEADERS.spiffe_id);
    if (!claimed) throw unauthenticated(`${HEADERS.spiffe_id} is required`);

    const identity = await this.verifier.verify(jwtSvid);
    if (identity.spiffeId !== claimed) throw unauthenticated(`JWT-SVID subject does not match ${HEADERS.spiffe_id}`);
    for (const part of ["tenant", "agent", "role"] as const) {
      const value = singleHeader(headers, HEADERS[part]);
      if (value !== undefined && value !== identity[part]) throw unauthenticated(`${HEADERS[part]} does not match the SPIFFE ID`);
    }
    if (caller) this.callers.check(caller, identity);
    // The JWT-SVID is for the sidecar and the injector only: it proves who asks, and goes no
    // further. (A revoked-identity check belongs here, once the identity is known.)
    return { identity, caller };
  }
}
