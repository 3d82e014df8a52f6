// One worker's resolution state, shared by every request of the worker: the configuration, the
// metrics and the requests that wait for another request's exchange.
import { Rejection } from "../filter/errors";
import { Metrics, Tier } from "../filter/metrics";
import { FilterConfig } from "../input/config";
import { Waiters } from "./waiters";

/** How a door answers: a credential (the injector's body, byte for byte) or a rejection. */
export interface CredentialAnswer {
  answerContextId(): u32;
  serve(body: Uint8Array, tier: Tier, expiresAt: i64): void;
  refuse(rejection: Rejection): void;
}

export class Worker {
  readonly waiters: Waiters;

  constructor(readonly config: FilterConfig, readonly metrics: Metrics, idleTickMs: u32) {
    this.waiters = new Waiters(<u32>config.coalescePollMs, idleTickMs, config.refreshBufferSeconds);
  }
}
