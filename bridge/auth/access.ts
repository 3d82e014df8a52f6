// The one place the bridge decides who may do what (bridge/README.md, "Security model"):
//   every route but /healthz      a verified X.509-SVID that a `callers` rule names   else 401 / 403
//   /v1/cred/{key}, /v1/locks/{key}  and a rule granting the key identity's tenant   else 403
//   POST /v1/purge, /v1/revocations  and an admin's JWT-SVID in authorization: Bearer  else 401 / 403
//   GET /v1/revocations           any caller a rule names (every sidecar polls it)
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { AgentSpiffeId } from "../../contract/index.ts";
import { forbidden, HttpError, unauthenticated } from "../errors.ts";
import { throttledErrorLog } from "../throttled-log.ts";
import type { AccessConfig } from "./access-config.ts";
import { createAdminVerifier } from "./admin.ts";
import { CallerPolicy, mayUseKeysOf, peerSpiffeId, type Caller } from "./callers.ts";

export interface AccessControl {
  /** The request's caller: 401 without a verified X.509-SVID, 403 when no rule names its SPIFFE ID. */
  caller(req: IncomingMessage): Caller;
  /** 403 unless `caller` may read and write credential keys (and locks) of `identity`. */
  requireKeyAccess(caller: Caller, identity: AgentSpiffeId): void;
  /** The admin's SPIFFE ID from the forwarded JWT-SVID; 401 without a valid one, 403 for a non-admin. */
  requireAdmin(req: IncomingMessage, caller: Caller): Promise<string>;
}

export function createAccessControl(config: AccessConfig, log: Logger): AccessControl {
  const policy = new CallerPolicy(config.callers);
  const admins = createAdminVerifier(config.admins, config.jwt);
  // The certificate cannot change during a connection: decide once per connection, not per request.
  const callers = new WeakMap<TLSSocket, Caller | HttpError>();
  const logDenial = throttledErrorLog(log, 10_000, "warn");

  const deny = (error: HttpError, fields: Record<string, unknown>): never => {
    logDenial({ ...fields, reason: error.message }, "request refused");
    throw error;
  };

  const callerOf = (socket: TLSSocket): Caller | HttpError => {
    const id = peerSpiffeId(socket);
    if ("reason" in id) return unauthenticated(id.reason);
    const caller = policy.callerFor(id);
    return caller.grants.length > 0 ? caller : forbidden("this caller may not use the bridge");
  };

  return {
    caller(req) {
      const socket = req.socket as TLSSocket;
      let known = callers.get(socket);
      if (!known) callers.set(socket, (known = callerOf(socket)));
      if (known instanceof HttpError) return deny(known, { caller: peerSpiffeIdText(socket) });
      return known;
    },
    requireKeyAccess(caller, identity) {
      if (!mayUseKeysOf(caller, identity)) {
        deny(forbidden("this caller may not use credentials of this tenant"), {
          caller: caller.spiffeId.id,
          tenant: identity.tenant,
          trust_domain: identity.trustDomain,
        });
      }
    },
    async requireAdmin(req, caller) {
      try {
        return await admins.verify(req.headers.authorization);
      } catch (error) {
        return deny(error as HttpError, { caller: caller.spiffeId.id, admin_route: req.url?.split("?")[0] });
      }
    },
  };
}

/** For the log: the certificate's SAN as presented, whatever it is (never a secret). */
function peerSpiffeIdText(socket: TLSSocket): string | undefined {
  const id = peerSpiffeId(socket);
  return "reason" in id ? undefined : id.id;
}
