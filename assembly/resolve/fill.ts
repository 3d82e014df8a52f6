// Filling the caches with a fresh credential: L1 at once, L2 through the bridge (no request waits
// for that), and the cross-pod lock released only once the L2 write has landed, so that no sidecar
// can miss both the lock and the entry.
import { FilterConfig } from "../input/config";
import { dispatchHttpCall, HttpCallHandler } from "../proxy-wasm/context";
import { putCredential, releaseLock } from "../tiers/bridge";
import { encodeEntry, isServable } from "../tiers/entry";
import { storeL1, Stored } from "../tiers/l1";
import { rememberStoredKey } from "../tiers/stored-keys";
import { countNewKey } from "./caps";

/** A cross-pod exchange lock this sidecar holds: the key and the token that proves it. */
export class HeldLock {
  constructor(public key: string, public token: Uint8Array) {}
}

export function storeInL1(key: string, entry: Uint8Array, expiresAt: i64): void {
  const stored = storeL1(key, entry, expiresAt);
  if (stored == Stored.Not) return;
  rememberStoredKey(key, expiresAt);
  if (stored == Stored.Created) countNewKey(key);
}

/** Stores the credential in L1 and writes it through to L2; no usable expiry → not cached. */
export function fillCaches(config: FilterConfig, key: string, credential: Uint8Array, expiresAt: i64, nowSeconds: i64, lock: HeldLock | null): void {
  if (expiresAt == 0 || !isServable(expiresAt, nowSeconds, config.refreshBufferSeconds)) {
    if (lock !== null) releaseHeldLock(config, lock);
    return;
  }
  const entry = encodeEntry(expiresAt, nowSeconds, credential);
  storeInL1(key, entry, expiresAt);
  const bridge = config.l2;
  if (bridge === null) return;
  const handler: HttpCallHandler = lock !== null ? new ReleaseAfterWrite(config, lock) : NO_ANSWER_NEEDED;
  const write = dispatchHttpCall(bridge.cluster, putCredential(bridge, key, expiresAt, nowSeconds), entry, bridge.timeoutMs, handler);
  if (write == 0 && lock !== null) releaseHeldLock(config, lock);
}

/** Releases the lock (fire and forget: its TTL ends it anyway). */
export function releaseHeldLock(config: FilterConfig, lock: HeldLock): void {
  const bridge = config.l2;
  if (bridge !== null) {
    dispatchHttpCall(bridge.cluster, releaseLock(bridge, lock.key), lock.token, bridge.timeoutMs, NO_ANSWER_NEEDED);
  }
}

class ReleaseAfterWrite implements HttpCallHandler {
  constructor(private config: FilterConfig, private lock: HeldLock) {}

  callContextId(): u32 { return 0; }

  onHttpCallResponse(numHeaders: u32, bodySize: u32): void {
    releaseHeldLock(this.config, this.lock);
  }
}

/** Calls whose answer changes nothing (a write-through, a lock release). */
class NoAnswerNeeded implements HttpCallHandler {
  callContextId(): u32 { return 0; }
  onHttpCallResponse(numHeaders: u32, bodySize: u32): void {}
}

const NO_ANSWER_NEEDED = new NoAnswerNeeded();
