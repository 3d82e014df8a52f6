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
import { HEADER_CACHE, HEADER_EXPIRES_AT } from "../contract";
import { badRequest, bodyTooLarge, credentialError, ErrorType, Rejection, unauthenticated } from "../filter/errors";
import { Tier, tierName } from "../filter/metrics";
import { FilterState } from "../filter/state";
import { CredentialRequest } from "../input/credential-request";
import { Identity, resolveIdentity } from "../input/identity";
import { Header, HeaderPairs } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { resolveCredential } from "../resolve/resolve";
import { CredentialAnswer } from "../resolve/worker";
import { credentialKey } from "../tiers/keys";
import { bytesEqual, decimalValue, isJsonMediaType } from "../util/ascii";
import { nowMilliseconds } from "../util/clock";
import { Door } from "./door";
import { parseHexrRequest } from "./hexr-request";

const STALE_WARNING = "110 - \"stale credential: the credential injector is unavailable\"";

export class HexrJsonDoor extends Door implements CredentialAnswer {
  private identity: Identity | null = null;
  private authorization: ArrayBuffer | null = null;

  // ---- 1. headers ----

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    const config = this.state.config;
    if (!bytesEqual(headers.value(":method"), "POST")) {
      return this.reject(new Rejection(405, ErrorType.BadRequest, "use POST for " + config.exchangePath));
    }
    if (!isJsonMediaType(headers.value("content-type"))) {
      return this.reject(new Rejection(415, ErrorType.BadRequest, "the request body must be application/json"));
    }
    const length = headers.value("content-length");
    if (length !== null) {
      const declared = decimalValue(length);
      if (declared < 0) return this.reject(badRequest("invalid content-length"));
      if (declared > <i64>config.maxBodyBytes) return this.reject(bodyTooLarge());
    }
    if (endOfStream) return this.reject(badRequest("the request body is empty; send {\"service\": ...}"));
    const resolved = resolveIdentity(config.identity);
    if (resolved.identity === null) return this.reject(unauthenticated(resolved.reason));
    this.identity = resolved.identity;
    // jwt_authn verified this token (or left no metadata); the injector re-verifies it. Read now:
    // once the headers callback returns, Envoy no longer lets the filter read request headers.
    this.authorization = headers.value("authorization");
    this.expectsBody = true;
    return Action.Continue;
  }

  // ---- 2. body ----

  onBody(body: ArrayBuffer | null): Action {
    this.expectsBody = false;
    const config = this.state.config;
    const parsed = parseHexrRequest(body, config);
    if (parsed.rejection !== null) return this.reject(parsed.rejection!);
    const asked = parsed.request!;
    const identity = this.identity!;
    if (!config.resources.allows(identity.spiffe, asked.service)) {
      return this.reject(credentialError(403, "the service is not in this agent's resources"));
    }
    const key = credentialKey(identity.spiffe.uri, asked.service, asked.region);
    const request = new CredentialRequest(identity, asked.service, asked.region, key, this.authorization);

    // ---- 3. resolve: L1 → L2 → L3 ----
    const nowMs = nowMilliseconds();
    resolveCredential(this.state.worker, request, this, nowMs / 1000);
    if (!this.isAnswered) this.startWaiting(nowMs);
    return Action.Pause;
  }

  // ---- 4. the answer (the CredentialAnswer of resolve/) ----

  answerContextId(): u32 {
    return this.contextId;
  }

  serve(body: Uint8Array, tier: Tier, expiresAt: i64): void {
    const headers = [new Header("content-type", "application/json"), new Header(HEADER_CACHE, tierName(tier))];
    if (expiresAt > 0) headers.push(new Header(HEADER_EXPIRES_AT, expiresAt.toString()));
    if (tier == Tier.L1Stale) headers.push(new Header("warning", STALE_WARNING));
    this.reply(200, "hexr_credential", body, headers);
  }

  refuse(rejection: Rejection): void {
    this.reject(rejection);
  }
}
