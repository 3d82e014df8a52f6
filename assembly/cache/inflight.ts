// The in-flight marker that makes one exchange serve a burst: before calling the injector for a
// key, a worker claims "inflight:{key}" in shared data with compare-and-swap. Every worker of this
// Envoy sees the claim, so N concurrent misses for one key cause one exchange; the others wait
// for L1 to fill. A claim carries its deadline so a crashed or stuck leader cannot block a key.
//
//   "P{deadline_ms}"                           an exchange is running
//   "F{until_ms}:{status}:{type}:{message}"    the last exchange failed (waiters answer with that error)
//   ""                                         free
//
// Envoy's shared data cannot create a key atomically (a write with cas 0 always lands), so claims
// are made under one lock key that exists from configuration on and is taken with CAS.
import { ErrorType, Rejection } from "../errors";
import { getSharedData, setSharedData } from "../proxy-wasm/host";
import { Status } from "../proxy-wasm/types";

export const enum ClaimState { Free, Pending, Failed }

export class Claim {
  constructor(public state: ClaimState, public failure: Rejection | null, public cas: u32) {}
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
const LOCK_KEY = "inflight:lock";
/** A lock older than this belonged to a worker that died between lock and unlock. */
const LOCK_LEASE_MS: i64 = 100;
const LOCK_ATTEMPTS = 16;

/** Creates the lock key; called at configuration, before any request can race for it. */
export function prepareClaims(): void {
  if (getSharedData(LOCK_KEY) === null) setSharedData(LOCK_KEY, EMPTY, 0);
}

function markerKey(key: string): string {
  return "inflight:" + key;
}

function parseDigits(text: string, from: i32, to: i32): i64 {
  let value: i64 = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    value = value * 10 + (c - 0x30);
  }
  return to > from ? value : -1;
}

export function readClaim(key: string, nowMs: i64): Claim {
  const stored = getSharedData(markerKey(key));
  if (stored === null) return new Claim(ClaimState.Free, null, 0);
  const text = String.UTF8.decode(stored.data);
  if (text.startsWith("P")) {
    if (parseDigits(text, 1, text.length) > nowMs) return new Claim(ClaimState.Pending, null, stored.cas);
  } else if (text.startsWith("F")) {
    const failure = parseFailure(text, nowMs);
    if (failure !== null) return new Claim(ClaimState.Failed, failure, stored.cas);
  }
  return new Claim(ClaimState.Free, null, stored.cas);
}

/** "F{until_ms}:{status}:{type}:{message}" while it is remembered; null once forgotten or malformed. */
function parseFailure(text: string, nowMs: i64): Rejection | null {
  const untilEnd = text.indexOf(":");
  const statusEnd = untilEnd < 0 ? -1 : text.indexOf(":", untilEnd + 1);
  const typeEnd = statusEnd < 0 ? -1 : text.indexOf(":", statusEnd + 1);
  if (typeEnd < 0 || parseDigits(text, 1, untilEnd) <= nowMs) return null;
  const status = parseDigits(text, untilEnd + 1, statusEnd);
  const type = parseDigits(text, statusEnd + 1, typeEnd);
  if (status < 400 || status > 599 || type < 0 || type > <i64>ErrorType.CredentialError) return null;
  return new Rejection(<u32>status, <ErrorType>type, text.substring(typeEnd + 1));
}

/** Claims the exchange of `key` for this worker; false when another exchange is already running. */
export function claimExchange(key: string, nowMs: i64, timeoutMs: i64): bool {
  if (!lockClaims(nowMs)) return false;
  const claimed = readClaim(key, nowMs).state != ClaimState.Pending;
  if (claimed) {
    const marker = Uint8Array.wrap(String.UTF8.encode("P" + (nowMs + timeoutMs + CLAIM_MARGIN_MS).toString()));
    setSharedData(markerKey(key), marker, 0);
  }
  setSharedData(LOCK_KEY, EMPTY, 0);
  return claimed;
}

function lockClaims(nowMs: i64): bool {
  const held = Uint8Array.wrap(String.UTF8.encode("L" + (nowMs + LOCK_LEASE_MS).toString()));
  for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
    const stored = getSharedData(LOCK_KEY);
    if (stored === null) {
      prepareClaims();
      continue;
    }
    const text = String.UTF8.decode(stored.data);
    if (text.length > 1 && parseDigits(text, 1, text.length) > nowMs) continue; // another worker holds it
    if (setSharedData(LOCK_KEY, held, stored.cas) == Status.Ok) return true;
  }
  return false;
}

export function releaseClaim(key: string): void {
  setSharedData(markerKey(key), EMPTY, 0);
}

/** Releases the claim and leaves the exact error for the waiters, on every worker, to answer with. */
export function releaseClaimWithFailure(key: string, failure: Rejection, nowMs: i64): void {
  const marker = "F" + (nowMs + FAILURE_MEMORY_MS).toString() + ":" + failure.status.toString() + ":" +
    (<i32>failure.type).toString() + ":" + failure.message;
  setSharedData(markerKey(key), Uint8Array.wrap(String.UTF8.encode(marker)), 0);
}
