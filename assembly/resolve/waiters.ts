// Requests that wait for an exchange another request runs. The words of resolve/:
//   leader  the request that runs the exchange of a key; every other request for it waits
//   claim   the leader's mark in this Envoy's shared data (claims.ts): one exchange per key per Envoy
//   lock    the leader's mark in L2 (the bridge's /v1/locks): one exchange per key across sidecars
// A waiter for a claim is woken at once when the leader runs on its worker, and by the tick when
// it runs on another. A waiter for a lock (held by another sidecar) looks in L2 again on the tick.
import { isStreamAlive } from "../proxy-wasm/context";
import { setEffectiveContext, setTickPeriodMilliseconds } from "../proxy-wasm/host";
import { lookupL1 } from "../tiers/l1";
import { ClaimState, readClaim } from "./claims";

export interface Waiter {
  /** The stream that waits. */
  waiterContextId(): u32;
  waitedKey(): string;
  /** What it waited for has (or may have) settled: look again. */
  resume(): void;
  /** Its stream is gone: let go of whatever it holds. */
  abandon(): void;
}

/**
 * Envoy runs the local replies a callback sends as nested actions after it returns, and each one
 * re-enters the VM; answering hundreds of waiters in one callback overflows the stack. So one
 * callback answers at most this many, and the poll tick (still short while anyone waits) the rest.
 */
export const MAX_ANSWERS_PER_CALLBACK = 16;
/** L2 is a network hop: look for another sidecar's result less often than at L1. */
const LOCK_RECHECK_MS: i64 = 25;

export class Waiters {
  private forClaims: Waiter[] = [];
  private forLocks: Waiter[] = [];
  private nextLockRecheckMs: i64 = 0;

  constructor(private pollMs: u32, private idleTickMs: u32, private refreshBufferSeconds: i64) {}

  get isEmpty(): bool {
    return this.forClaims.length == 0 && this.forLocks.length == 0;
  }

  waitForClaim(waiter: Waiter): void {
    this.forClaims.push(waiter);
    this.updateTickPeriod();
  }

  waitForLock(waiter: Waiter): void {
    this.forLocks.push(waiter);
    this.updateTickPeriod();
  }

  /** Waiters learn of results on other workers or pods by looking again, so look often while anyone waits. */
  private updateTickPeriod(): void {
    setTickPeriodMilliseconds(this.isEmpty ? this.idleTickMs : this.pollMs);
  }

  /**
   * Lets up to `budget` of this worker's waiters for `key` look at L1 (and the claim) again;
   * returns how many it woke. Those left over stay registered for the next tick.
   */
  wakeClaimWaiters(key: string, budget: i32 = MAX_ANSWERS_PER_CALLBACK): i32 {
    const woken = new Array<Waiter>();
    let kept = 0;
    for (let i = 0; i < this.forClaims.length; i++) {
      const waiter = this.forClaims[i];
      if (woken.length < budget && waiter.waitedKey() == key) woken.push(waiter);
      else this.forClaims[kept++] = waiter;
    }
    if (woken.length == 0) return 0;
    this.forClaims.length = kept;
    this.updateTickPeriod();
    for (let i = 0; i < woken.length; i++) resumeIfAlive(woken[i]);
    return woken.length;
  }

  /** On the tick: wakes the waiters of every key whose leader (on another worker) has finished. */
  pollClaims(nowMs: i64): void {
    const checked = new Array<string>();
    let budget = MAX_ANSWERS_PER_CALLBACK;
    for (let i = 0; i < this.forClaims.length && budget > 0; i++) {
      const key = this.forClaims[i].waitedKey();
      if (checked.includes(key)) continue;
      checked.push(key);
      const filled = lookupL1(key, nowMs / 1000, this.refreshBufferSeconds) !== null;
      if (filled || readClaim(key, nowMs).state != ClaimState.Pending) {
        budget -= this.wakeClaimWaiters(key, budget);
        i = -1; // the list changed: start over (keys already checked are skipped)
      }
    }
  }

  /** On the tick: the waiters for another sidecar's lock look in L2 again. */
  recheckLocks(nowMs: i64): void {
    if (this.forLocks.length == 0 || nowMs < this.nextLockRecheckMs) return;
    this.nextLockRecheckMs = nowMs + LOCK_RECHECK_MS;
    const count = min(this.forLocks.length, MAX_ANSWERS_PER_CALLBACK);
    const due = this.forLocks.slice(0, count);
    this.forLocks = this.forLocks.slice(count);
    this.updateTickPeriod();
    for (let i = 0; i < due.length; i++) resumeIfAlive(due[i]);
  }
}

function resumeIfAlive(waiter: Waiter): void {
  const id = waiter.waiterContextId();
  if (!isStreamAlive(id)) {
    waiter.abandon(); // the agent hung up
    return;
  }
  setEffectiveContext(id);
  waiter.resume();
}
