// A door that hands out credentials: it verifies who asks, builds a CredentialRequest in its own
// protocol, and answers resolve/ as its Requester. Each protocol says how a credential and a
// refusal look on its wire (serve, reject); the resolution itself is the same for every door.
import { HEADER_REGION, HEADER_SERVICE, HEADER_SPIFFE_ID } from "../contract";
import { Rejection, svidExpired } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { CredentialRequest, copyOf, RecentRequest } from "../input/credential-request";
import { Identity, IdentityResult, resolveIdentity } from "../input/identity";
import { Header, HeaderPairs } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { resolveCredential } from "../resolve/resolve";
import { Requester } from "../resolve/worker";
import { credentialKey } from "../tiers/keys";
import { nowMilliseconds } from "../util/clock";
import { Door } from "./door";

export abstract class CredentialDoor extends Door implements Requester {
  protected identity: Identity | null = null;
  /** What was asked, once known (for the answer's headers, and so for the access log). */
  protected asked: CredentialRequest | null = null;

  /** The caller's verified identity, kept for this request, or the reason there is none (for the caller to refuse). */
  protected verifyCaller(): IdentityResult {
    const resolved = resolveIdentity(this.state.config.identity);
    this.identity = resolved.identity;
    return resolved;
  }

  /**
   * The request the path at path[0, size) built last time for this identity, if it is the same
   * path: a stock SDK asks with the same URL every time.
   */
  protected recentForPath(identity: Identity, path: usize, size: i32): CredentialRequest | null {
    const recent = this.state.recentPathRequest;
    return recent !== null && recent.matchesAt(identity, path, size) ? recent.request : null;
  }

  /** A new request of `identity` for `service` in `region`, remembered for the path it was read from. */
  protected newRequestForPath(identity: Identity, service: string, region: string, path: usize, size: i32): CredentialRequest {
    const request = new CredentialRequest(identity, service, region, credentialKey(identity.spiffe.uri, service, region));
    this.state.recentPathRequest = new RecentRequest(identity, copyOf(path, size), request);
    return request;
  }

  /** L1 → L2 → L3 for `request`: answered at once from L1, or later through serve / refuse. */
  protected resolve(request: CredentialRequest): Action {
    this.asked = request;
    const identity = request.identity;
    const nowMs = nowMilliseconds();
    if (identity.notAfter >= 0 && nowMs / 1000 >= identity.notAfter) return this.reject(svidExpired());
    resolveCredential(this.state.worker, request, this, nowMs / 1000);
    if (!this.isAnswered) this.startWaiting(nowMs);
    return Action.Pause;
  }

  /**
   * A refusal in this door's protocol: `body` as `contentType` (and `extra`, if any), with the
   * method it takes on a 405.
   */
  protected refuseWith(rejection: Rejection, body: Uint8Array, contentType: string, method: string, extra: Header | null = null): Action {
    const headers = [new Header("content-type", contentType)];
    if (extra !== null) headers.push(extra);
    if (rejection.status == 405) headers.push(new Header("allow", method));
    return this.reply(rejection.status, "hexr_exchange_rejected", body, this.addKnownHeaders(headers));
  }

  /** Names who asked for what on a refusal too, once known (the access log reads these headers). */
  protected addKnownHeaders(headers: Header[]): Header[] {
    const identity = this.identity;
    if (identity !== null) headers.push(new Header(HEADER_SPIFFE_ID, identity.spiffe.uri));
    const request = this.asked;
    if (request !== null) {
      headers.push(new Header(HEADER_SERVICE, request.service));
      headers.push(new Header(HEADER_REGION, request.region));
    }
    return headers;
  }

  // ---- the Requester of resolve/ ----

  requesterContextId(): u32 {
    return this.contextId;
  }

  agentToken(): ArrayBuffer | null {
    return null;
  }

  abstract serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void;

  refuse(rejection: Rejection): void {
    this.reject(rejection);
  }
}

/**
 * Two authorization headers, or one that Envoy joined from two (a JWT never contains a comma):
 * jwt_authn verifies one token, and with two the one passed on could be another than the one verified.
 */
export function hasSeveralTokens(headers: HeaderPairs): bool {
  const count = headers.occurrences("authorization");
  if (count != 1) return count > 1;
  for (let i = 0; i < headers.foundSize; i++) {
    if (load<u8>(headers.foundAt + <usize>i) == 0x2c) return true;
  }
  return false;
}
