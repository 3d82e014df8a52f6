// A request that missed L1, top to bottom (the words leader, claim and lock: see waiters.ts):
//   L2 (the bridge)        hit → fill L1, serve
//   failure memory         the key's exchange failed with a 5xx a moment ago → that failure (or stale)
//   claim                  another request of this Envoy leads → wait for it, then read L1
//   lock (across pods)     another sidecar leads → look in L2 again until it has written, or its lock runs out
//   L3 (the injector)      fill L1 and L2, serve, wake the waiters
//   injector failure       a 5xx → serve the entry stale if it has not really expired, else the error
import { Rejection, upstreamFailure } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { CredentialRequest } from "../input/credential-request";
import { dispatchHttpCall, HttpCallHandler } from "../proxy-wasm/context";
import { getBuffer, getHeaderBytes, nowNanoseconds } from "../proxy-wasm/host";
import { BufferType, MapType } from "../proxy-wasm/types";
import { getCredential, takeLock } from "../tiers/bridge";
import { decodeEntry, isServable } from "../tiers/entry";
import { injectorCall, isCredentialFor, readInjectorAnswer } from "../tiers/injector";
import { readL1 } from "../tiers/l1";
import { decimal, decimalValue } from "../util/ascii";
import { nowMilliseconds } from "../util/clock";
import { claimExchange, ClaimState, readClaim, releaseClaim, releaseClaimWithFailure } from "./claims";
import { fillCaches, HeldLock, releaseHeldLock, storeInL1 } from "./fill";
import { Waiter } from "./waiters";
import { Requester, Worker } from "./worker";

const enum Stage { LookingInL2, WaitingForClaim, TakingLock, WaitingForLock, RecheckingL2, Exchanging, Done }




export class Resolution implements Waiter {
  private stage: Stage = Stage.LookingInL2;
  /** The cross-pod lock, while this request holds it. */
  private lock: HeldLock | null = null;
  /** When another sidecar's lock on the key runs out. */
  private lockDeadlineMs: i64 = 0;
  private readonly contextId: u32;

  constructor(private worker: Worker, private request: CredentialRequest, private requester: Requester) {
    this.contextId = requester.requesterContextId();
  }

  start(): void {
    if (!this.lookInL2(Stage.LookingInL2)) this.askInjector();
  }

  // ---- L2 ----

  private lookInL2(stage: Stage): bool {
    const bridge = this.worker.config.l2;
    if (bridge === null) return false;
    const call = getCredential(bridge, this.request.key);
    if (dispatchHttpCall(bridge.cluster, call, null, bridge.timeoutMs, new L2Answer(this)) == 0) {
      if (stage == Stage.LookingInL2) this.worker.metrics.miss(Tier.L2);
      return false;
    }
    this.stage = stage;
    return true;
  }

  onL2Answer(numHeaders: u32, bodySize: u32): void {
    const leading = this.stage == Stage.RecheckingL2;
    const value = successBody(numHeaders, bodySize);
    const entry = value !== null ? decodeEntry(value) : null;
    const nowSeconds = nowMilliseconds() / 1000;
    // L2 is shared by every sidecar: a value is served only if it is the credential of exactly the
    // identity, service and region asked for, whatever key it was found under.
    if (value !== null && entry !== null && isServable(entry.expiresAt, nowSeconds, this.worker.config.refreshBufferSeconds) &&
      isCredentialFor(entry.body, this.request) && !this.worker.revocations.revokes(this.request.key, entry.storedAt)) {
      this.worker.metrics.hit(Tier.L2);
      storeInL1(this.request.key, Uint8Array.wrap(value), entry.expiresAt);
      this.serve(entry.body, Tier.L2, entry.expiresAt);
      if (leading) this.finishLeading();
      return;
    }
    // A miss, a timeout, an error or garbage: L2 trouble never fails a request.
    if (!leading) {
      this.worker.metrics.miss(Tier.L2);
      this.askInjector();
    } else if (this.lock !== null) {
      this.exchange();
    } else {
      this.takeLock(); // the other sidecar may have let its lock go without an entry (a failure)
    }
  }

  // ---- one exchange per key: failure memory, the claim, the lock ----

  private askInjector(): void {
    const key = this.request.key;
    const config = this.worker.config;
    const nowMs = nowMilliseconds();
    const failure = readClaim(key, nowMs).serverFailure;
    if (failure !== null) {
      // Answer with that rather than call them again at the full request rate.
      this.serveStaleOr(failure);
      return;
    }
    if (!claimExchange(key, nowMs, config.injector.timeoutMs)) {
      this.stage = Stage.WaitingForClaim;
      this.worker.waiters.waitForClaim(this);
      return;
    }
    // A leader may have finished between this request's L1 miss and its claim (an L2 lookup
    // takes a while): its answer is in L1 by now.
    const filled = this.worker.servableFromL1(key, nowMs / 1000);
    if (filled !== null) {
      this.worker.metrics.coalesced();
      this.serve(filled.body, Tier.L1, filled.expiresAt);
      this.finishLeading();
      return;
    }
    this.takeLock();
  }

  /** Across pods, one sidecar at a time exchanges a key: the lock lives in L2 (when there is one). */
  private takeLock(): void {
    const bridge = this.worker.config.l2;
    if (bridge !== null) {
      const token = lockToken(this.contextId);
      const call = takeLock(bridge, this.request.key, this.worker.config.injector.timeoutMs);
      if (dispatchHttpCall(bridge.cluster, call, token, bridge.timeoutMs, new LockAnswer(this, token)) != 0) {
        this.stage = Stage.TakingLock;
        return;
      }
    }
    this.exchange();
  }

  onLockAnswer(numHeaders: u32, token: Uint8Array): void {
    const status = numHeaders > 0 ? decimalValue(getHeaderBytes(MapType.HttpCallResponseHeaders, ":status")) : 0;
    if (status == 201) {
      // Ours. Another sidecar may have written the entry just before it let the lock go: look once more.
      this.lock = new HeldLock(this.request.key, token);
      if (!this.lookInL2(Stage.RecheckingL2)) this.exchange();
    } else if (status == 409) {
      if (this.lockDeadlineMs == 0) this.lockDeadlineMs = nowMilliseconds() + this.worker.config.injector.timeoutMs;
      this.waitForLock();
    } else {
      this.exchange(); // the bridge is in trouble: L2 trouble never fails a request
    }
  }

  private waitForLock(): void {
    this.stage = Stage.WaitingForLock;
    this.worker.waiters.waitForLock(this);
  }

  // ---- waiting (the Waiter of waiters.ts) ----

  waiterContextId(): u32 {
    return this.contextId;
  }

  waitedKey(): string {
    return this.request.key;
  }

  resume(): void {
    if (this.stage == Stage.WaitingForClaim) this.resumeAfterClaim();
    else if (this.stage == Stage.WaitingForLock) this.resumeAfterLock();
  }

  /** The agent hung up while this request waited: a request that leads lets its claim go. */
  abandon(): void {
    if (this.stage != Stage.WaitingForLock) return;
    this.stage = Stage.Done;
    releaseClaim(this.request.key);
    this.worker.waiters.wakeClaimWaiters(this.request.key);
  }

  private resumeAfterClaim(): void {
    const nowMs = nowMilliseconds();
    const cached = this.worker.servableFromL1(this.request.key, nowMs / 1000);
    if (cached !== null) {
      this.worker.metrics.coalesced();
      this.serve(cached.body, Tier.L1, cached.expiresAt);
      return;
    }
    const claim = readClaim(this.request.key, nowMs);
    const failure = claim.serverFailure;
    if (failure !== null) {
      this.worker.metrics.coalesced();
      this.serveStaleOr(failure);
      return;
    }
    if (claim.state == ClaimState.Pending) {
      this.worker.waiters.waitForClaim(this); // woken for a leader that is not done yet
      return;
    }
    this.askInjector(); // the leader left nothing usable, failed with a 4xx, or vanished: lead
  }

  private resumeAfterLock(): void {
    if (nowMilliseconds() >= this.lockDeadlineMs || !this.lookInL2(Stage.RecheckingL2)) {
      this.exchange(); // the other sidecar's lock ran out without an entry, or L2 is out of reach
    }
  }

  // ---- L3 ----

  private exchange(): void {
    const injector = this.worker.config.injector;
    const call = injectorCall(this.worker.config, this.request, this.requester.agentToken());
    if (dispatchHttpCall(injector.cluster, call.headers, call.body, injector.timeoutMs, new InjectorAnswer(this)) == 0) {
      this.failExchange(upstreamFailure(503));
      return;
    }
    this.stage = Stage.Exchanging;
  }

  onInjectorAnswer(numHeaders: u32, bodySize: u32): void {
    const answer = readInjectorAnswer(numHeaders, bodySize);
    const rejection = answer.rejection;
    if (rejection !== null) {
      this.failExchange(rejection);
      return;
    }
    const credential = answer.credential;
    this.worker.metrics.hit(Tier.L3);
    // The lock goes only once the entry is in L2 (fill.ts), so no sidecar can miss both.
    fillCaches(this.worker.config, this.request.key, credential, answer.expiresAt, nowMilliseconds() / 1000, this.lock);
    this.lock = null;
    this.serve(credential, Tier.L3, answer.expiresAt);
    this.finishLeading();
  }

  /** The exchange this request led failed: leave the failure for the waiters, then answer. */
  private failExchange(rejection: Rejection): void {
    this.worker.metrics.miss(Tier.L3);
    const lock = this.lock;
    if (lock !== null) releaseHeldLock(this.worker.config, lock);
    this.lock = null;
    releaseClaimWithFailure(this.request.key, rejection, nowMilliseconds());
    this.serveStaleOr(rejection);
    this.worker.waiters.wakeClaimWaiters(this.request.key);
  }

  private finishLeading(): void {
    const lock = this.lock;
    if (lock !== null) releaseHeldLock(this.worker.config, lock);
    this.lock = null;
    releaseClaim(this.request.key);
    this.worker.waiters.wakeClaimWaiters(this.request.key);
  }

  // ---- answers ----

  private serve(body: Uint8Array, tier: Tier, expiresAt: i64): void {
    this.stage = Stage.Done;
    this.requester.serve(this.request, body, tier, expiresAt);
  }

  /**
   * Stale-if-error: when the injector cannot answer, an entry past its refresh buffer but still
   * inside the credential's real lifetime is better than an error. Nothing past expiry, ever.
   */
  private serveStaleOr(rejection: Rejection): void {
    this.stage = Stage.Done;
    const entry = rejection.status >= 500 ? readL1(this.request.key) : null;
    if (entry !== null && nowMilliseconds() / 1000 < entry.expiresAt && !this.worker.revocations.revokes(this.request.key, entry.storedAt)) {
      this.worker.metrics.staleServed();
      this.requester.serve(this.request, entry.body, Tier.L1Stale, entry.expiresAt);
      return;
    }
    this.requester.refuse(rejection);
  }
}

/** The body of a call's answer when its status is 200; null on any other status, reset or timeout. */
function successBody(numHeaders: u32, bodySize: u32): ArrayBuffer | null {
  if (numHeaders == 0 || bodySize == 0) return null;
  if (decimalValue(getHeaderBytes(MapType.HttpCallResponseHeaders, ":status")) != 200) return null;
  return getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
}

/** Proves this request holds the lock when it releases it (a late release cannot free another's). */
function lockToken(contextId: u32): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(decimal(nowNanoseconds()) + "-" + decimal(contextId)));
}

// Each call's answer goes to its own handler: the token is looked up, not the stage.

class L2Answer implements HttpCallHandler {
  constructor(private resolution: Resolution) {}
  callContextId(): u32 { return this.resolution.waiterContextId(); }
  onHttpCallResponse(numHeaders: u32, bodySize: u32): void { this.resolution.onL2Answer(numHeaders, bodySize); }
}

class LockAnswer implements HttpCallHandler {
  constructor(private resolution: Resolution, private token: Uint8Array) {}
  callContextId(): u32 { return this.resolution.waiterContextId(); }
  onHttpCallResponse(numHeaders: u32, bodySize: u32): void { this.resolution.onLockAnswer(numHeaders, this.token); }
}

class InjectorAnswer implements HttpCallHandler {
  constructor(private resolution: Resolution) {}
  callContextId(): u32 { return this.resolution.waiterContextId(); }
  onHttpCallResponse(numHeaders: u32, bodySize: u32): void { this.resolution.onInjectorAnswer(numHeaders, bodySize); }
}
