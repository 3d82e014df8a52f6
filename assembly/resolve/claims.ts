// The claim that makes one exchange serve a burst in this Envoy: before calling the injector for a
// key, a request (the key's leader) claims it in shared data with compare-and-swap. Every worker
// of this Envoy sees the claim, so N concurrent misses for one key cause one exchange; the others
// wait for L1 to fill. A claim carries its deadline so a crashed or stuck leader cannot block a key.
//
//   "P{deadline_ms}"                           an exchange is running
//   "F{until_ms}:{status}:{type}:{message}"    the last exchange failed (waiters answer with that error)
//   ""                                         free
//
// Envoy's shared data cannot create a key atomically (a write with cas 0 always lands), so claims
// are made under one lock key that exists from configuration on and is taken with CAS.
import { ErrorType, Rejection } from "../filter/errors";
import { getSharedData, setSharedData } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";
import { CLAIMS_LOCK_KEY, claimKey } from "../tiers/keys";
import { decimal, decimalEnd, decimalIn, scanDecimal } from "../util/ascii";
import { countNewKey } from "./caps";

export const enum ClaimState { Free, Pending, Failed }

export class Claim {
  constructor(public state: ClaimState, public failure: Rejection | null, public cas: u32) {}

  /**
   * The 5xx the last exchange of the key failed with, while remembered: the injector, OPA or STS
   * failed a moment ago. (A 4xx depends on the token presented: never reused.)
   */
  get serverFailure(): Rejection | null {
    const failure = this.failure;
    return this.state == ClaimState.Failed && failure !== null && failure.status >= 500 ? failure : null;
  }
}

/**
 * A claim outlives its leader's injector call by this much, so the leader's own timeout settles the
 * exchange (and its waiters adopt the outcome) before anyone may take the claim over.
 */
const CLAIM_MARGIN_MS: i64 = 1000;
/**
 * How long a 5xx is remembered: waiters adopt it, and new requests for the key are answered with
 * it instead of calling a failing injector, OPA or STS again — about 4 calls a second per key in an
 * outage instead of the full request rate, and at most this much delay once it is over.
 */
const FAILURE_MEMORY_MS: i64 = 250;
const EMPTY = new Uint8Array(0);
/** A lock older than this belonged to a worker that died between lock and unlock. */
const LOCK_LEASE_MS: i64 = 100;
const LOCK_ATTEMPTS = 16;

/** Creates the lock key; called at configuration, before any request can race for it. */
export function prepareClaims(): void {
  if (getSharedData(CLAIMS_LOCK_KEY) === null) setSharedData(CLAIMS_LOCK_KEY, EMPTY, 0);
}

const PENDING: u8 = 0x50; // "P"
const FAILED: u8 = 0x46; // "F"
const COLON: u8 = 0x3a;

export function readClaim(key: string, nowMs: i64): Claim {
  const stored = getSharedData(claimKey(key));
  if (stored === null) return new Claim(ClaimState.Free, null, 0);
  const data = stored.data;
  const size = data.byteLength;
  const first = size > 0 ? load<u8>(changetype<usize>(data)) : 0;
  if (first == PENDING) {
    if (decimalIn(data, 1, size) > nowMs) return new Claim(ClaimState.Pending, null, stored.cas);
  } else if (first == FAILED) {
    const failure = parseFailure(data, nowMs);
    if (failure !== null) return new Claim(ClaimState.Failed, failure, stored.cas);
  }
  return new Claim(ClaimState.Free, null, stored.cas);
}

/** "F{until_ms}:{status}:{type}:{message}" while it is remembered; null once forgotten or malformed. */
function parseFailure(data: ArrayBuffer, nowMs: i64): Rejection | null {
  const base = changetype<usize>(data);
  const size = data.byteLength;
  const until = scanDecimal(base, 1, size);
  if (until <= nowMs || !followedByColon(base, size)) return null;
  const status = scanDecimal(base, decimalEnd + 1, size);
  if (status < 400 || status > 599 || !followedByColon(base, size)) return null;
  const type = scanDecimal(base, decimalEnd + 1, size);
  if (type < 0 || type > <i64>ErrorType.CredentialError || !followedByColon(base, size)) return null;
  const messageStart = decimalEnd + 1;
  return new Rejection(<u32>status, <ErrorType>type, String.UTF8.decodeUnsafe(base + messageStart, size - messageStart));
}

@inline
function followedByColon(base: usize, size: i32): bool {
  return decimalEnd < size && load<u8>(base + decimalEnd) == COLON;
}

/** Claims the exchange of `key` for this worker; false when another exchange is already running. */
export function claimExchange(key: string, nowMs: i64, timeoutMs: i64): bool {
  if (!lockClaims(nowMs)) return false;
  const current = readClaim(key, nowMs);
  const claimed = current.state != ClaimState.Pending;
  if (claimed) {
    if (current.cas == 0) countNewKey(key); // the key's first claim creates its marker's key
    const marker = Uint8Array.wrap(String.UTF8.encode("P" + decimal(nowMs + timeoutMs + CLAIM_MARGIN_MS)));
    setSharedData(claimKey(key), marker, 0);
  }
  setSharedData(CLAIMS_LOCK_KEY, EMPTY, 0);
  return claimed;
}

function lockClaims(nowMs: i64): bool {
  const lease = Uint8Array.wrap(String.UTF8.encode("L" + decimal(nowMs + LOCK_LEASE_MS)));
  for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
    const stored = getSharedData(CLAIMS_LOCK_KEY);
    if (stored === null) {
      prepareClaims();
      continue;
    }
    const held = stored.data;
    if (held.byteLength > 1 && decimalIn(held, 1, held.byteLength) > nowMs) continue; // another worker holds it
    if (setSharedData(CLAIMS_LOCK_KEY, lease, stored.cas) == Status.Ok) return true;
  }
  return false;
}

export function releaseClaim(key: string): void {
  setSharedData(claimKey(key), EMPTY, 0);
}

/** Releases the claim and leaves the exact error for the waiters, on every worker, to answer with. */
export function releaseClaimWithFailure(key: string, failure: Rejection, nowMs: i64): void {
  const until = nowMs + FAILURE_MEMORY_MS;
  const marker = "F" + decimal(until) + ":" + decimal(failure.status) + ":" +
    decimal(<i32>failure.type) + ":" + failure.message;
  setSharedData(claimKey(key), Uint8Array.wrap(String.UTF8.encode(marker)), 0);
  failedKeys.push(key);
  failedUntil.push(until);
}

// The failures this VM left behind, so the tick can empty them once forgotten: a marker's message
// would otherwise stay in shared data until the key's next exchange, for every key that ever failed.
let failedKeys: string[] = [];
let failedUntil: i64[] = [];

/** On the tick: empties the failure markers this VM wrote that are no longer remembered. */
export function sweepForgottenFailures(nowMs: i64): void {
  if (failedKeys.length == 0) return;
  const keptKeys = new Array<string>();
  const keptUntil = new Array<i64>();
  for (let i = 0; i < failedKeys.length; i++) {
    if (failedUntil[i] > nowMs) {
      keptKeys.push(failedKeys[i]);
      keptUntil.push(failedUntil[i]);
      continue;
    }
    // Only if it still is that failure: another exchange of the key may have claimed it since.
    const claim = readClaim(failedKeys[i], nowMs);
    if (claim.state == ClaimState.Free && claim.cas != 0) setSharedData(claimKey(failedKeys[i]), EMPTY, claim.cas);
  }
  failedKeys = keptKeys;
  failedUntil = keptUntil;
}
