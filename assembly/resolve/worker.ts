// One worker's resolution state, shared by every request of the worker: the configuration, the
// metrics and the requests that wait for another request's exchange.
import { Rejection } from "../filter/errors";
import { Metrics, Tier } from "../filter/metrics";
import { FilterConfig } from "../input/config";
import { CredentialRequest } from "../input/credential-request";
import { CacheEntry } from "../tiers/entry";
import { lookupL1 } from "../tiers/l1";
import { Revocations } from "../tiers/revocations";
import { Waiters } from "./waiters";

/** The door's side of a resolution: the stream it answers, the agent's token, and how it answers. */
export interface Requester {
  requesterContextId(): u32;
  /** The agent's `authorization` header as jwt_authn saw it, for the injector; null for mTLS-only callers. */
  agentToken(): ArrayBuffer | null;
  /** The credential for `request`: the injector's body, byte for byte, from `tier`. */
  serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void;
  refuse(rejection: Rejection): void;
}

export class Worker {
  readonly waiters: Waiters;
  readonly revocations: Revocations = new Revocations();

  constructor(readonly config: FilterConfig, readonly metrics: Metrics, idleTickMs: u32) {
    this.waiters = new Waiters(<u32>config.coalescePollMs, idleTickMs, config.refreshBufferSeconds);
    this.revocations.refresh();
  }

  /** The L1 entry of `key` if it may be served now: servable, and stored after any revocation of it. */
  servableFromL1(key: string, nowSeconds: i64): CacheEntry | null {
    const entry = lookupL1(key, nowSeconds, this.config.refreshBufferSeconds);
    return entry !== null && !this.revocations.revokes(key, entry.storedAt) ? entry : null;
  }
}
