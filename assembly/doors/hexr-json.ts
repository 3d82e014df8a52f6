// The Hexr JSON door: POST /exchange {"service": ..., "region"?: ...}, answered with the
// injector's JSON byte for byte. One request, top to bottom:
//   1. headers: the envelope (POST, application/json, a body of at most max_body_bytes), then the
//      caller's verified SPIFFE ID (mTLS, jwt_authn, or static) and its JWT-SVID for the injector
//   2. body: service and region, the local allow-list; key = cred:{spiffe-id}:{service}:{region}
//   3. resolve/: L1 → L2 → L3 (one exchange per key however many ask), refresh-ahead, stale-if-error
//   4. the answer: 200 with x-hexr-cache and x-hexr-expires-at, or the contract's error
//
// Why L3 is a call and not "continue upstream": Envoy delivers the body to a filter only after
// its headers callback returned Continue, and from then on the request headers can no longer be
// changed. The service and region live in the body, so the filter makes the injector request
// itself, over the same mTLS cluster the router would use. (Envoy's buffer filter, after this one
// on the exchange route, keeps the router from starting an upstream request meanwhile.)
import { bodyTooLarge, credentialError, ErrorType, invalidContentLength, notJsonMediaType, Rejection, serviceNotAllowed, severalTokens, unauthenticated } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { isProviderKeyService } from "../input/catalog";
import { CredentialRequest, RecentRequest } from "../input/credential-request";
import { IdentitySource } from "../input/identity";
import { HeaderPairs, sendLocalResponseWithReplyHeaders } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { credentialKey } from "../tiers/keys";
import { bytesEqualAt, decimalAt, isJsonMediaTypeAt } from "../util/ascii";
import { message } from "../util/message";
import { beginCredentialHeaders } from "./credential-answer";
import { CredentialDoor, hasSeveralTokens } from "./credential-door";
import { emptyBody, parseHexrRequest } from "./hexr-request";

export class HexrJsonDoor extends CredentialDoor {
  /** The request headers as read in the headers callback (Envoy lets them be read only there). */
  private headers: HeaderPairs | null = null;

  // ---- 1. headers ----

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    const config = this.state.config;
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "POST")) {
      return this.reject(new Rejection(405, ErrorType.BadRequest, message("use POST for ") + config.exchangePath));
    }
    if (!headers.find("content-type") || !isJsonMediaTypeAt(headers.foundAt, headers.foundSize)) {
      return this.reject(notJsonMediaType());
    }
    if (headers.find("content-length")) {
      const declared = decimalAt(headers.foundAt, headers.foundSize);
      if (declared < 0) return this.reject(invalidContentLength());
      if (declared > <i64>config.maxBodyBytes) return this.reject(bodyTooLarge());
    }
    if (endOfStream) return this.reject(emptyBody());
    if (hasSeveralTokens(headers)) return this.reject(severalTokens());
    const resolved = this.verifyCaller();
    if (resolved.identity === null) return this.reject(unauthenticated(resolved.reason));
    // The token is copied out only if the injector is called (agentToken): an L1 hit never needs it.
    this.headers = headers;
    this.expectsBody = true;
    return Action.Continue;
  }

  // ---- 2. body ----

  onBody(body: ArrayBuffer | null): Action {
    this.expectsBody = false;
    if (body === null) return this.reject(emptyBody());
    const identity = this.identity!;
    const state = this.state;
    const recent = state.recentRequest;
    let request: CredentialRequest;
    if (recent !== null && recent.matches(identity, body)) {
      request = recent.request;
    } else {
      const asked = parseHexrRequest(body, state.config);
      const rejection = asked.rejection;
      if (rejection !== null) return this.reject(rejection);
      if (isProviderKeyService(asked.service)) {
        return this.reject(credentialError(403, message("an LLM provider key is used by the sidecar's LLM route, never handed out")));
      }
      if (!state.config.resources.allows(identity.spiffe, asked.service)) {
        return this.reject(serviceNotAllowed());
      }
      const key = credentialKey(identity.spiffe.uri, asked.service, asked.region);
      request = new CredentialRequest(identity, asked.service, asked.region, key);
      state.recentRequest = new RecentRequest(identity, body, request);
    }

    // ---- 3. resolve: L1 → L2 → L3 ----
    return this.resolve(request);
  }

  // ---- 4. the answer (the Requester of resolve/) ----

  /**
   * The agent's JWT-SVID, which the injector verifies again. None for the listener's own (static)
   * identity: the sidecar asserts that one itself, and a client's token names no one here.
   */
  agentToken(): ArrayBuffer | null {
    const headers = this.headers;
    const identity = this.identity;
    if (headers === null || identity === null || identity.source == IdentitySource.Static) return null;
    return headers.value("authorization");
  }

  // Every answer names who asked for what and from which tier, so that the sidecar's access log can
  // record it (%RESP(x-hexr-...)%) without the filter calling into Envoy once more per request.

  serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void {
    beginCredentialHeaders("application/json", request, tier, expiresAt, 0);
    this.answered();
    sendLocalResponseWithReplyHeaders(200, "hexr_credential", body);
  }

  reject(rejection: Rejection): Action {
    return this.refuseWith(rejection, rejection.body(), "application/json", "POST");
  }
}
