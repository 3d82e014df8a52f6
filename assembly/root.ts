// The plugin (root) context of one worker: the validated configuration and metric ids, and the
// work that outlives a single request — requests waiting for another request's exchange,
// background refreshes, and the tick that evicts expired L1 entries.
import { encodeEntry, isServable, parseEpochSeconds } from "./cache/entry";
import { claimExchange, ClaimState, prepareClaims, readClaim, releaseClaim } from "./cache/inflight";
import { lookupL1, storeL1 } from "./cache/l1";
import { evictExpiredKeys, forgetKeysWithPrefix, rememberStoredKey } from "./cache/stored-keys";
import { l2PutRequest, l2RevocationsSinceRequest, l2UnlockRequest } from "./cache/l2";
import { FilterConfig, parseConfig } from "./config";
import { ExchangeStream } from "./exchange";
import { expiresAtInBody, InjectorCall } from "./injector";
import { Metrics } from "./metrics";
import { parseRevocationLog } from "./revocation";
import { findStream, HttpContext, RootContext } from "./proxy-wasm/context";
import { getBuffer, getHeader, log, nowNanoseconds, setEffectiveContext, setTickPeriodMilliseconds } from "./proxy-wasm/host";
import { BufferType, LogLevel, MapType } from "./proxy-wasm/types";

const NANOS_PER_MILLISECOND: u64 = 1_000_000;
/**
 * Envoy runs the local replies a callback sends as nested actions after it returns, and each one
 * re-enters the VM; answering hundreds of waiters in one callback overflows the stack. So one
 * callback answers at most this many, and the poll tick (still short while anyone waits) the rest.
 */
const MAX_ANSWERS_PER_CALLBACK = 16;
/** L2 is a network hop: look for another sidecar's result less often than at L1. */
const REMOTE_RECHECK_MS: i64 = 25;

export function nowMilliseconds(): i64 {
  return <i64>(nowNanoseconds() / NANOS_PER_MILLISECOND);
}

export function nowSeconds(): i64 {
  return nowMilliseconds() / 1000;
}

export class ExchangeRoot extends RootContext {
  config: FilterConfig = new FilterConfig();
  metrics: Metrics | null = null;
  // This worker's requests waiting for an exchange another request runs, as (key, stream id) pairs.
  // Parallel arrays, like the refreshes below: bursts are short and a Map<string, u32[]> would add
  // kilobytes of code to a module whose size is a target.
  private waitingKeys: string[] = [];
  private waitingStreams: u32[] = [];
  /** Leaders of a key another sidecar is exchanging: they look in L2 again every REMOTE_RECHECK_MS. */
  private remoteWaiters: u32[] = [];
  private nextRemoteRecheckMs: i64 = 0;
  private refreshTokens: u32[] = [];
  /** L2 write-throughs whose cross-pod lock goes when they have landed, and the keys locked. */
  private unlockTokens: u32[] = [];
  private unlockKeys: string[] = [];
  private refreshKeys: string[] = [];
  private nextEvictionMs: i64 = 0;
  /** The bridge's revocation epoch this VM has applied; -1 until the first poll answered. */
  private revocationEpoch: i64 = -1;
  private revocationPoll: u32 = 0;
  private nextRevocationPollMs: i64 = 0;

  onConfigure(configuration: ArrayBuffer): bool {
    const result = parseConfig(configuration);
    if (result.config === null) {
      // Envoy rejects the plugin when configure fails, so a bad config never reaches a request.
      log(LogLevel.Critical, "hexr exchange filter: invalid plugin configuration: " + result.error);
      return false;
    }
    this.config = result.config!;
    this.metrics = new Metrics(this.config.services);
    prepareClaims();
    this.nextEvictionMs = nowMilliseconds() + this.config.evictionIntervalSeconds * 1000;
    setTickPeriodMilliseconds(this.idleTickMs());
    if (this.config.debugTrapPath !== null) {
      log(LogLevel.Warn, "hexr exchange filter: debug_trap_path is set; requests to it trap the VM (tests only)");
    }
    log(LogLevel.Info, "hexr exchange filter configured for " + this.config.exchangePath);
    return true;
  }

  newHttpContext(id: u32): HttpContext {
    return new ExchangeStream(id, this);
  }

  private idleTickMs(): u32 {
    const evictionMs = this.config.evictionIntervalSeconds * 1000;
    const revocation = this.config.revocation;
    return <u32>(revocation !== null && revocation.pollIntervalMs < evictionMs ? revocation.pollIntervalMs : evictionMs);
  }

  // ---- filling the caches ----

  /**
   * Fills L1 and writes through to L2 (no request waits for that); no usable expiry → not cached.
   * With `releaseLock`, the cross-pod exchange lock for the key goes once the L2 write has landed.
   */
  cacheCredential(key: string, body: Uint8Array, expiresAt: i64, releaseLock: bool = false): void {
    const now = nowSeconds();
    const l2 = this.config.l2;
    if (expiresAt == 0 || !isServable(expiresAt, now, this.config.refreshBufferSeconds) || l2 === null) {
      if (expiresAt != 0 && isServable(expiresAt, now, this.config.refreshBufferSeconds)) {
        this.storeInL1(key, encodeEntry(expiresAt, now, body), expiresAt);
      }
      if (releaseLock) this.releaseExchangeLock(key);
      return;
    }
    const entry = encodeEntry(expiresAt, now, body);
    this.storeInL1(key, entry, expiresAt);
    const write = this.dispatchHttpCall(l2.cluster, l2PutRequest(l2, key, expiresAt, now), entry, l2.timeoutMs);
    if (!releaseLock) return;
    if (write == 0) {
      this.releaseExchangeLock(key);
      return;
    }
    this.unlockTokens.push(write);
    this.unlockKeys.push(key);
  }

  /** Releases the cross-pod lock (fire and forget: its TTL ends it anyway). */
  releaseExchangeLock(key: string): void {
    const l2 = this.config.l2;
    if (l2 !== null) this.dispatchHttpCall(l2.cluster, l2UnlockRequest(l2, key), null, l2.timeoutMs);
  }

  storeInL1(key: string, entry: Uint8Array, expiresAt: i64): void {
    if (storeL1(key, entry, expiresAt)) rememberStoredKey(key, expiresAt);
  }

  // ---- coalescing: one exchange per key, however many requests want it ----

  addWaiter(key: string, streamId: u32): void {
    this.waitingKeys.push(key);
    this.waitingStreams.push(streamId);
    this.updateTickPeriod();
  }

  addRemoteWaiter(streamId: u32): void {
    this.remoteWaiters.push(streamId);
    this.updateTickPeriod();
  }

  /** Waiters learn of results on other workers or pods by looking again, so look often while anyone waits. */
  private updateTickPeriod(): void {
    const waiting = this.waitingKeys.length > 0 || this.remoteWaiters.length > 0;
    setTickPeriodMilliseconds(waiting ? <u32>this.config.coalescePollMs : this.idleTickMs());
  }

  private recheckRemoteWaiters(nowMs: i64): void {
    if (nowMs < this.nextRemoteRecheckMs) return;
    this.nextRemoteRecheckMs = nowMs + REMOTE_RECHECK_MS;
    const count = this.remoteWaiters.length < MAX_ANSWERS_PER_CALLBACK ? this.remoteWaiters.length : MAX_ANSWERS_PER_CALLBACK;
    const ids = this.remoteWaiters.slice(0, count);
    this.remoteWaiters = this.remoteWaiters.slice(count);
    for (let i = 0; i < ids.length; i++) {
      const stream = findStream(ids[i]);
      if (stream === null || !(stream instanceof ExchangeStream)) continue;
      setEffectiveContext(ids[i]);
      (<ExchangeStream>stream).recheckRemote();
    }
    this.updateTickPeriod();
  }

  /**
   * Lets up to `budget` of this worker's waiters for `key` look at L1 (and the claim) again;
   * returns how many it woke. Those left over stay registered for the next tick.
   */
  wakeWaiters(key: string, budget: i32 = MAX_ANSWERS_PER_CALLBACK): i32 {
    const woken = new Array<u32>();
    let kept = 0;
    for (let i = 0; i < this.waitingKeys.length; i++) {
      if (this.waitingKeys[i] == key && woken.length < budget) {
        woken.push(this.waitingStreams[i]);
      } else {
        this.waitingKeys[kept] = this.waitingKeys[i];
        this.waitingStreams[kept++] = this.waitingStreams[i];
      }
    }
    if (woken.length == 0) return 0;
    this.waitingKeys.length = kept;
    this.waitingStreams.length = kept;
    this.updateTickPeriod();
    for (let i = 0; i < woken.length; i++) {
      const stream = findStream(woken[i]);
      if (stream === null || !(stream instanceof ExchangeStream)) continue; // the agent hung up
      setEffectiveContext(woken[i]);
      (<ExchangeStream>stream).resumeAfterPeer();
    }
    return woken.length;
  }

  private pollWaiters(): void {
    const nowMs = nowMilliseconds();
    const checked = new Array<string>();
    let budget = MAX_ANSWERS_PER_CALLBACK;
    for (let i = 0; i < this.waitingKeys.length && budget > 0; i++) {
      const key = this.waitingKeys[i];
      if (checked.includes(key)) continue;
      checked.push(key);
      const filled = lookupL1(key, nowMs / 1000, this.config.refreshBufferSeconds) !== null;
      if (filled || readClaim(key, nowMs).state != ClaimState.Pending) {
        budget -= this.wakeWaiters(key, budget);
        i = -1; // the list changed: start over (keys already checked are skipped)
      }
    }
  }

  // ---- refresh-ahead ----

  /** Starts one background re-exchange for `key` unless one is already running anywhere in this Envoy. */
  refreshInBackground(key: string, call: InjectorCall): void {
    const injector = this.config.injector;
    if (!claimExchange(key, nowMilliseconds(), injector.timeoutMs)) return;
    const token = this.dispatchHttpCall(injector.cluster, call.headers, call.body, injector.timeoutMs);
    if (token == 0) {
      releaseClaim(key);
      return;
    }
    this.refreshTokens.push(token);
    this.refreshKeys.push(key);
    this.metrics!.refreshAhead();
  }

  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
    if (token == this.revocationPoll) {
      this.revocationPoll = 0;
      this.onRevocationLog(numHeaders, bodySize);
      return;
    }
    const unlock = this.unlockTokens.indexOf(token);
    if (unlock >= 0) {
      const key = this.unlockKeys[unlock];
      removeAt(this.unlockTokens, unlock);
      removeAt(this.unlockKeys, unlock);
      this.releaseExchangeLock(key);
      return;
    }
    const index = this.refreshTokens.indexOf(token);
    if (index < 0) return; // another L2 write-through or lock release: nothing waits for its answer
    const key = this.refreshKeys[index];
    removeAt(this.refreshTokens, index);
    removeAt(this.refreshKeys, index);
    if (numHeaders > 0 && bodySize > 0 && getHeader(MapType.HttpCallResponseHeaders, ":status") == "200") {
      const body = getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
      if (body !== null) {
        const header = getHeader(MapType.HttpCallResponseHeaders, "x-hexr-expires-at");
        const headerExpiry = header !== null ? parseEpochSeconds(header) : 0;
        this.cacheCredential(key, Uint8Array.wrap(body), headerExpiry > 0 ? headerExpiry : expiresAtInBody(body));
      }
    }
    // A failed refresh costs nothing: the entry is still servable and the next hit tries again.
    releaseClaim(key);
    this.wakeWaiters(key);
  }

  // ---- the tick ----

  onTick(): void {
    if (this.waitingKeys.length > 0) this.pollWaiters();
    const nowMs = nowMilliseconds();
    if (this.remoteWaiters.length > 0) this.recheckRemoteWaiters(nowMs);
    if (this.config.revocation !== null && nowMs >= this.nextRevocationPollMs && this.revocationPoll == 0) {
      this.nextRevocationPollMs = nowMs + this.config.revocation!.pollIntervalMs;
      this.pollRevocations();
    }
    if (nowMs >= this.nextEvictionMs) {
      this.nextEvictionMs = nowMs + this.config.evictionIntervalSeconds * 1000;
      this.evictExpired(nowMs / 1000);
    }
  }

  // ---- revocation ----

  private pollRevocations(): void {
    const l2 = this.config.l2!;
    this.revocationPoll = this.dispatchHttpCall(l2.cluster, l2RevocationsSinceRequest(l2, this.revocationEpoch), null, l2.timeoutMs);
  }

  private onRevocationLog(numHeaders: u32, bodySize: u32): void {
    if (numHeaders == 0 || bodySize == 0 || getHeader(MapType.HttpCallResponseHeaders, ":status") != "200") return;
    const body = getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
    const revocations = body !== null ? parseRevocationLog(body) : null;
    if (revocations === null) return;
    if (revocations.epoch < this.revocationEpoch) {
      // The log went back: Valkey lost it and started again. Everything in the new log is newer
      // than this VM's epoch, so read it whole on the next tick.
      this.revocationEpoch = 0;
      this.nextRevocationPollMs = 0;
      return;
    }
    // The first answer only tells where the log stands: this VM holds nothing older than itself.
    if (this.revocationEpoch >= 0) {
      for (let i = 0; i < revocations.prefixes.length; i++) this.forgetPrefix(revocations.prefixes[i]);
    }
    this.revocationEpoch = revocations.epoch;
  }

  /** Empties this VM's L1 entries under `prefix` (each VM empties what it stored). */
  forgetPrefix(prefix: string): void {
    this.metrics!.evicted(forgetKeysWithPrefix(prefix));
  }

  private evictExpired(nowSeconds: i64): void {
    this.metrics!.evicted(evictExpiredKeys(nowSeconds));
  }
}

/** Removes one element without keeping order (these lists are small and unordered). */
function removeAt<T>(list: T[], index: i32): void {
  const last = list.length - 1;
  list[index] = list[last];
  list.length = last;
}
