// One POST /exchange, top to bottom, as in ARCHITECTURE.md:
//   1. request headers: validate the envelope, resolve the caller's verified SPIFFE ID,
//      strip client x-hexr-* headers
//   2. request body: parse it, apply the local allow-list; key = cred:{spiffe-id}:{service}:{region}
//   3. L1 (shared data)                    hit → local reply
//   4. L2 (call to the bridge cluster)     hit → fill L1, local reply
//   5. L3 (call to the injector cluster, SVID-derived headers) → fill L1 and L2, local reply;
//      only one request per key runs it (the in-flight claim in this Envoy, a lock in L2 across
//      pods), the others wait and read L1 (or L2);
//      if the injector fails, an entry past its refresh buffer but not expired is served stale
//
// Why L3 is a call and not "continue upstream": Envoy delivers the body to a filter only after
// its headers callback returned Continue, and from then on the request headers can no longer be
// changed. The service and region live in the body, so the filter makes the injector request
// itself, over the same mTLS cluster the router would use. (Envoy's buffer filter, after this one
// on the exchange route, keeps the router from starting an upstream request meanwhile.)
import { isAllowedLocally } from "./allowlist";
import { cacheKey, CacheEntry, decodeEntry, isDueForRefresh, isServable, parseEpochSeconds } from "./cache/entry";
import { claimExchange, ClaimState, readClaim, releaseClaim, releaseClaimWithFailure } from "./cache/inflight";
import { lookupL1, readL1 } from "./cache/l1";
import { l2GetRequest, l2LockRequest, l2RevokeRequest } from "./cache/l2";
import { FilterConfig } from "./config";
import { badRequest, credentialError, ErrorType, Rejection, unauthenticated } from "./errors";
import { Identity, resolveIdentity } from "./identity";
import { expiresAtInBody, injectorCall, InjectorCall, injectorRejection } from "./injector";
import { parseJson } from "./json";
import { Tier, tierName } from "./metrics";
import { parseRevocationRequest, revocationBody, revokedBody } from "./revocation";
import { HttpContext } from "./proxy-wasm/context";
import {
  getBuffer, getHeader, getHeaderBytes, Header, nowNanoseconds, removeHeadersWithPrefix, sendLocalResponse,
} from "./proxy-wasm/host";
import { Action, BufferType, MapType } from "./proxy-wasm/types";
import { bytesEqual, decimalValue, isJsonMediaType, pathMatches } from "./ascii";
import { ExchangeRequest, parseExchangeRequest } from "./request";
import { ExchangeRoot, nowMilliseconds, nowSeconds } from "./root";

const enum Stage {
  PassThrough, AwaitingBody, AwaitingL2, AwaitingPeer, AwaitingLock, AwaitingRemote, RecheckingL2, AwaitingInjector,
  AwaitingRevocation, Done,
}

const NANOS_PER_MILLISECOND: u64 = 1_000_000;
/** The value of a cross-pod lock: only its existence matters. */
const LOCK_VALUE = Uint8Array.wrap(String.UTF8.encode("1"));
/** Purging Valkey scans every master: give it longer than a cache lookup. */
const REVOCATION_TIMEOUT_MS: u32 = 5000;

export class ExchangeStream extends HttpContext {
  private stage: Stage = Stage.PassThrough;
  private startedAt: u64 = 0;
  private identity: Identity | null = null;
  private authorization: ArrayBuffer | null = null;
  private request: ExchangeRequest | null = null;
  private key: string = "";
  /** This request is an admin's revocation, not an exchange. */
  private revoking: bool = false;
  private revokedPrefix: string = "";
  /** When another sidecar's exchange lock for this key runs out. */
  private remoteDeadlineMs: i64 = 0;
  /** This request took the cross-pod lock and must release it when its exchange ends. */
  private holdsRemoteLock: bool = false;

  constructor(id: u32, private exchange: ExchangeRoot) {
    super(id, exchange);
  }

  // ---- 1. request headers ----

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const path = getHeaderBytes(MapType.HttpRequestHeaders, ":path");
    if (path === null) return Action.Continue;
    const trapPath = this.exchange.config.debugTrapPath;
    if (trapPath !== null && pathMatches(path, trapPath)) unreachable();
    const revocation = this.exchange.config.revocation;
    this.revoking = revocation !== null && pathMatches(path, revocation.path);
    if (!this.revoking && !pathMatches(path, this.exchange.config.exchangePath)) return Action.Continue;
    this.startedAt = nowNanoseconds();
    // Only this filter may speak x-hexr-*: whatever a client sent under that prefix is dropped.
    removeHeadersWithPrefix(MapType.HttpRequestHeaders, "x-hexr-");

    const rejection = checkEnvelope(this.exchange.config, endOfStream);
    if (rejection !== null) return this.reject(rejection);
    const resolved = resolveIdentity(this.exchange.config);
    if (resolved.identity === null) return this.reject(unauthenticated(resolved.reason));
    this.identity = resolved.identity;
    // jwt_authn verified this token (or left no metadata); the injector re-verifies it and
    // presents it to the cloud's STS, so it travels with the L3 call.
    this.authorization = getHeaderBytes(MapType.HttpRequestHeaders, "authorization");
    this.stage = Stage.AwaitingBody;
    return Action.Continue;
  }

  // ---- 2. request body ----

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    if (this.stage == Stage.PassThrough) return Action.Continue;
    if (this.stage != Stage.AwaitingBody) return Action.Pause;
    if (bodySize > <u32>this.exchange.config.maxBodyBytes) return this.reject(bodyTooLarge());
    if (!endOfStream) return Action.Pause;
    return this.handleBody(bodySize);
  }

  onRequestTrailers(numTrailers: u32): Action {
    if (this.stage == Stage.PassThrough) return Action.Continue;
    if (this.stage != Stage.AwaitingBody) return Action.Pause;
    return this.handleBody(<u32>this.exchange.config.maxBodyBytes + 1);
  }

  private handleBody(bodySize: u32): Action {
    const config = this.exchange.config;
    const body = bodySize > 0 ? getBuffer(BufferType.HttpRequestBody, 0, bodySize) : null;
    if (body !== null && body.byteLength > config.maxBodyBytes) return this.reject(bodyTooLarge());
    if (this.revoking) return this.revoke(body !== null ? body : new ArrayBuffer(0));
    const parsed = parseExchangeRequest(body !== null ? body : new ArrayBuffer(0), config);
    if (parsed.rejection !== null) return this.reject(parsed.rejection!);
    const request = parsed.request!;
    const spiffe = this.identity!.spiffe;
    if (!isAllowedLocally(config, spiffe, request.service)) {
      return this.reject(credentialError(403, "the service is not in this agent's resources"));
    }
    this.request = request;
    this.key = cacheKey(spiffe.uri, request.service, request.region);
    const metrics = this.exchange.metrics!;
    metrics.invocation(request.service);

    // ---- 3. L1 ----
    const now = nowSeconds();
    const cached = lookupL1(this.key, now, config.refreshBufferSeconds);
    if (cached !== null) {
      metrics.hit(Tier.L1);
      if (isDueForRefresh(cached, now, config.refreshBufferSeconds, config.refreshAheadPercent)) {
        this.exchange.refreshInBackground(this.key, this.injectorCall());
      }
      return this.replyFromCache(cached, Tier.L1);
    }
    metrics.miss(Tier.L1);
    if (!this.askL2()) this.askInjector();
    return Action.Pause;
  }

  // ---- 4. L2 ----

  private askL2(): bool {
    const l2 = this.exchange.config.l2;
    if (l2 === null) return false;
    const token = this.dispatchHttpCall(l2.cluster, l2GetRequest(l2, this.key), null, l2.timeoutMs);
    if (token == 0) {
      this.exchange.metrics!.miss(Tier.L2);
      return false;
    }
    this.stage = Stage.AwaitingL2;
    return true;
  }

  private onL2Answer(numHeaders: u32, bodySize: u32): void {
    const holdsClaim = this.stage == Stage.RecheckingL2;
    const value = readCallBody(numHeaders, bodySize, "200");
    const entry = value !== null ? decodeEntry(value) : null;
    if (entry !== null && isServable(entry.expiresAt, nowSeconds(), this.exchange.config.refreshBufferSeconds)) {
      this.exchange.metrics!.hit(Tier.L2);
      this.exchange.storeInL1(this.key, Uint8Array.wrap(value!), entry.expiresAt);
      this.replyFromCache(entry, Tier.L2);
      if (holdsClaim) {
        this.releaseRemoteLock();
        releaseClaim(this.key);
        this.exchange.wakeWaiters(this.key);
      }
      return;
    }
    // A miss, a timeout, an error or garbage: L2 trouble never fails a request.
    if (holdsClaim) {
      if (this.holdsRemoteLock) this.callInjector();
      else this.waitForRemote();
      return;
    }
    this.exchange.metrics!.miss(Tier.L2);
    this.askInjector();
  }

  // ---- 5. L3 ----

  private injectorCall(): InjectorCall {
    return injectorCall(this.exchange.config, this.identity!, this.request!, this.authorization);
  }

  private askInjector(): void {
    const config = this.exchange.config;
    const nowMs = nowMilliseconds();
    const recent = readClaim(this.key, nowMs);
    if (recent.state == ClaimState.Failed && recent.failure!.status >= 500) {
      // The injector, OPA or STS failed this key a moment ago: answer with that rather than call
      // them again at the full request rate. (A 4xx depends on the token presented: never reused.)
      this.replyStaleOr(recent.failure!);
      return;
    }
    if (!claimExchange(this.key, nowMs, config.injector.timeoutMs)) {
      // Another request is exchanging this very key: wait for its result instead of adding a call.
      this.stage = Stage.AwaitingPeer;
      this.exchange.addWaiter(this.key, this.id);
      return;
    }
    // A leader may have finished between this request's L1 miss and its claim (an L2 lookup
    // takes a while): its answer is in L1 by now.
    const filled = lookupL1(this.key, nowMs / 1000, config.refreshBufferSeconds);
    if (filled !== null) {
      releaseClaim(this.key);
      this.exchange.metrics!.coalesced();
      this.replyFromCache(filled, Tier.L1);
      this.exchange.wakeWaiters(this.key);
      return;
    }
    // Across pods, one sidecar at a time exchanges a key: the lock lives in L2 (when there is one).
    const l2 = config.l2;
    if (l2 !== null) {
      const lock = l2LockRequest(l2, this.key, config.injector.timeoutMs);
      if (this.dispatchHttpCall(l2.cluster, lock, LOCK_VALUE, l2.timeoutMs) != 0) {
        this.stage = Stage.AwaitingLock;
        return;
      }
    }
    this.callInjector();
  }

  private onLockAnswer(numHeaders: u32): void {
    const status = numHeaders > 0 ? getHeader(MapType.HttpCallResponseHeaders, ":status") : null;
    if (status == "201") {
      // Ours. Another sidecar may have written the entry just before it let the lock go: look once more.
      this.holdsRemoteLock = true;
      const l2 = this.exchange.config.l2!;
      if (this.dispatchHttpCall(l2.cluster, l2GetRequest(l2, this.key), null, l2.timeoutMs) != 0) {
        this.stage = Stage.RecheckingL2;
        return;
      }
    }
    if (status != "409") {
      this.callInjector(); // ours, or the bridge is in trouble: L2 trouble never fails a request
      return;
    }
    this.remoteDeadlineMs = nowMilliseconds() + this.exchange.config.injector.timeoutMs;
    this.waitForRemote();
  }

  private waitForRemote(): void {
    this.stage = Stage.AwaitingRemote;
    this.exchange.addRemoteWaiter(this.id);
  }

  /** Called by the root's tick while another sidecar holds the exchange lock: look in L2 again. */
  recheckRemote(): void {
    if (this.stage != Stage.AwaitingRemote) return;
    const l2 = this.exchange.config.l2!;
    if (nowMilliseconds() >= this.remoteDeadlineMs) {
      this.callInjector(); // the other sidecar's lease ran out without an entry
      return;
    }
    if (this.dispatchHttpCall(l2.cluster, l2GetRequest(l2, this.key), null, l2.timeoutMs) == 0) {
      this.callInjector();
      return;
    }
    this.stage = Stage.RecheckingL2;
  }

  private releaseRemoteLock(): void {
    if (!this.holdsRemoteLock) return;
    this.holdsRemoteLock = false;
    this.exchange.releaseExchangeLock(this.key);
  }

  private callInjector(): void {
    const injector = this.exchange.config.injector;
    const call = this.injectorCall();
    const token = this.dispatchHttpCall(injector.cluster, call.headers, call.body, injector.timeoutMs);
    if (token == 0) {
      this.failExchange(credentialError(503, "the credential injector is unavailable"));
      return;
    }
    this.stage = Stage.AwaitingInjector;
  }

  private onInjectorAnswer(numHeaders: u32, bodySize: u32): void {
    if (numHeaders == 0) {
      this.failExchange(credentialError(503, "the credential injector is unavailable"));
      return;
    }
    const status = getHeader(MapType.HttpCallResponseHeaders, ":status");
    const body = bodySize > 0 ? getBuffer(BufferType.HttpCallResponseBody, 0, bodySize) : null;
    if (status != "200" || body === null) {
      this.failExchange(injectorRejection(parseStatus(status), body));
      return;
    }
    this.exchange.metrics!.hit(Tier.L3);
    const credential = Uint8Array.wrap(body);
    const expiresHeader = getHeader(MapType.HttpCallResponseHeaders, "x-hexr-expires-at");
    const headerExpiry = expiresHeader !== null ? parseEpochSeconds(expiresHeader) : 0;
    const expiresAt = headerExpiry > 0 ? headerExpiry : expiresAtInBody(body);
    // The cross-pod lock goes only once the entry is in L2, so no sidecar can miss both.
    this.exchange.cacheCredential(this.key, credential, expiresAt, this.holdsRemoteLock);
    this.holdsRemoteLock = false;
    releaseClaim(this.key);
    this.reply(credential, Tier.L3, expiresAt);
    this.exchange.wakeWaiters(this.key);
  }

  /** The exchange this request led failed: tell the waiters, then answer stale or with the error. */
  private failExchange(rejection: Rejection): void {
    this.exchange.metrics!.miss(Tier.L3);
    this.releaseRemoteLock();
    releaseClaimWithFailure(this.key, rejection, nowMilliseconds());
    this.replyStaleOr(rejection);
    this.exchange.wakeWaiters(this.key);
  }

  /** Called by the root when the exchange this request waited for has finished (or was abandoned). */
  resumeAfterPeer(): void {
    if (this.stage != Stage.AwaitingPeer) return;
    const metrics = this.exchange.metrics!;
    const nowMs = nowMilliseconds();
    const cached = lookupL1(this.key, nowMs / 1000, this.exchange.config.refreshBufferSeconds);
    if (cached !== null) {
      metrics.coalesced();
      this.replyFromCache(cached, Tier.L1);
      return;
    }
    const claim = readClaim(this.key, nowMs);
    if (claim.state == ClaimState.Failed) {
      metrics.coalesced();
      this.replyStaleOr(claim.failure!);
      return;
    }
    this.askInjector(); // the leader left nothing usable (or vanished): exchange ourselves
  }

  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
    if (this.stage == Stage.AwaitingL2 || this.stage == Stage.RecheckingL2) this.onL2Answer(numHeaders, bodySize);
    else if (this.stage == Stage.AwaitingLock) this.onLockAnswer(numHeaders);
    else if (this.stage == Stage.AwaitingInjector) this.onInjectorAnswer(numHeaders, bodySize);
    else if (this.stage == Stage.AwaitingRevocation) this.onRevocationAnswer(numHeaders, bodySize);
  }

  // ---- revocation (an admin's request on the revocation path) ----

  private revoke(body: ArrayBuffer): Action {
    const config = this.exchange.config;
    const parsed = parseRevocationRequest(body, this.identity!.spiffe, config.revocation!);
    if (parsed.rejection !== null) return this.reject(parsed.rejection!);
    this.revokedPrefix = parsed.prefix!;
    const l2 = config.l2!;
    const token = this.dispatchHttpCall(l2.cluster, l2RevokeRequest(l2), revocationBody(this.revokedPrefix), REVOCATION_TIMEOUT_MS);
    if (token == 0) return this.reject(credentialError(503, "the revocation could not be recorded"));
    this.stage = Stage.AwaitingRevocation;
    return Action.Pause;
  }

  private onRevocationAnswer(numHeaders: u32, bodySize: u32): void {
    const answer = readCallBody(numHeaders, bodySize, "200");
    const recorded = answer !== null ? parseJson(String.UTF8.decode(answer)).value : null;
    const epoch = recorded !== null ? recorded.member("epoch") : null;
    if (epoch === null || !epoch.isInteger()) {
      this.reject(credentialError(503, "the revocation could not be recorded"));
      return;
    }
    this.exchange.forgetPrefix(this.revokedPrefix);
    sendLocalResponse(200, "hexr_revoked", revokedBody(this.revokedPrefix, <i64>epoch.number),
      [new Header("content-type", "application/json")]);
    this.finish();
  }

  // ---- replies ----

  private replyFromCache(entry: CacheEntry, tier: Tier): Action {
    return this.reply(entry.body, tier, entry.expiresAt);
  }

  private reply(body: Uint8Array, tier: Tier, expiresAt: i64): Action {
    return this.send(body, tierName(tier), expiresAt, null);
  }

  /**
   * Stale-if-error: when the injector cannot answer, an entry past its refresh buffer but still
   * inside the credential's real lifetime is better than an error. Nothing past expiry, ever.
   */
  private replyStaleOr(rejection: Rejection): void {
    const entry = readL1(this.key);
    if (entry !== null && nowSeconds() < entry.expiresAt && rejection.status >= 500) {
      this.exchange.metrics!.staleServed();
      this.send(entry.body, "L1-stale", entry.expiresAt,
        "110 - \"stale credential: the credential injector is unavailable\"");
      return;
    }
    this.reject(rejection);
  }

  private send(body: Uint8Array, tier: string, expiresAt: i64, warning: string | null): Action {
    const headers = [new Header("content-type", "application/json"), new Header("x-hexr-cache", tier)];
    if (expiresAt > 0) headers.push(new Header("x-hexr-expires-at", expiresAt.toString()));
    if (warning !== null) headers.push(new Header("warning", warning));
    sendLocalResponse(200, "hexr_credential", body, headers);
    return this.finish();
  }

  private reject(rejection: Rejection): Action {
    const headers = [new Header("content-type", "application/json")];
    if (rejection.status == 405) headers.push(new Header("allow", "POST"));
    sendLocalResponse(rejection.status, "hexr_exchange_rejected", rejection.body(), headers);
    return this.finish();
  }

  private finish(): Action {
    this.stage = Stage.Done;
    this.exchange.metrics!.recordDuration((nowNanoseconds() - this.startedAt) / NANOS_PER_MILLISECOND);
    return Action.Pause;
  }
}

// ---- helpers of the flow ----



function checkEnvelope(config: FilterConfig, endOfStream: bool): Rejection | null {
  if (!bytesEqual(getHeaderBytes(MapType.HttpRequestHeaders, ":method"), "POST")) {
    return new Rejection(405, ErrorType.BadRequest, "use POST for " + config.exchangePath);
  }
  if (!isJsonMediaType(getHeaderBytes(MapType.HttpRequestHeaders, "content-type"))) {
    return new Rejection(415, ErrorType.BadRequest, "the request body must be application/json");
  }
  const length = getHeaderBytes(MapType.HttpRequestHeaders, "content-length");
  if (length !== null) {
    const declared = decimalValue(length);
    if (declared < 0) return badRequest("invalid content-length");
    if (declared > <i64>config.maxBodyBytes) return bodyTooLarge();
  }
  if (endOfStream) return badRequest("the request body is empty; send {\"service\": ...}");
  return null;
}

function bodyTooLarge(): Rejection {
  return new Rejection(413, ErrorType.BadRequest, "the request body is too large");
}


function parseStatus(status: string | null): u32 {
  return status !== null ? <u32>parseEpochSeconds(status) : 502;
}

/** The body of an HTTP call's answer when it has the expected status; null on failure or timeout. */
function readCallBody(numHeaders: u32, bodySize: u32, expectedStatus: string): ArrayBuffer | null {
  if (numHeaders == 0 || bodySize == 0) return null;
  if (getHeader(MapType.HttpCallResponseHeaders, ":status") != expectedStatus) return null;
  return getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
}
