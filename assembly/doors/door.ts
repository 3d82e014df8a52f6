// A door is one way into the filter, opened for one request whose path it serves (filter/routes.ts):
// it reads the request in its protocol and answers in its protocol. Credential doors turn the
// request into a CredentialRequest for the caller's verified identity and hand it to resolve/.
import { Rejection } from "../filter/errors";
import { FilterState } from "../filter/state";
import { HeaderPairs, Header, sendLocalResponse } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { nowMilliseconds } from "../util/clock";

export abstract class Door {
  /** The request's body is still to come; the stream hands it over whole (onBody). */
  expectsBody: bool = false;
  /** Its request, once its headers are accepted, goes on to Envoy's router, body and all. */
  forwards: bool = false;
  private isAnsweredFlag: bool = false;
  /**
   * When the request began to wait for something outside this callback (an L2, lock or injector
   * call): such answers are timed in hexr_request_duration_ms. Answers given within the request's
   * own callback (an L1 hit, a rejection) take microseconds and are not timed, which spares the
   * hot path two host calls; the tier counters count them.
   */
  private waitingSinceMs: i64 = 0;

  constructor(readonly state: FilterState, readonly contextId: u32) {}

  /** The request now waits for a call; its answer will be timed from `nowMs`. */
  startWaiting(nowMs: i64): void {
    if (this.waitingSinceMs == 0) this.waitingSinceMs = nowMs;
  }

  /** The request headers; a door that needs the body sets expectsBody and returns Continue. */
  abstract onHeaders(headers: HeaderPairs, endOfStream: bool): Action;

  /** The whole body (null when empty), once the request has ended. */
  onBody(body: ArrayBuffer | null): Action {
    return Action.Pause;
  }

  /** The largest body this door reads; a larger one is refused with 413 before it is read. */
  maxBodyBytes(): i32 {
    return this.state.config.maxBodyBytes;
  }

  get isAnswered(): bool {
    return this.isAnsweredFlag;
  }

  /** Sends the local reply that ends this request. */
  protected reply(status: u32, details: string, body: Uint8Array, headers: Header[]): Action {
    this.answered();
    sendLocalResponse(status, details, body, headers);
    return Action.Pause;
  }

  /** Marks the request answered (call it just before its local reply is sent), timing it if it waited. */
  protected answered(): void {
    this.expectsBody = false;
    this.isAnsweredFlag = true;
    if (this.waitingSinceMs > 0) this.state.metrics.recordDuration(<u64>(nowMilliseconds() - this.waitingSinceMs));
  }

  /** Refuses the request in the Hexr error format; doors of other protocols override it. */
  reject(rejection: Rejection): Action {
    const headers = [new Header("content-type", "application/json")];
    if (rejection.status == 405) headers.push(new Header("allow", "POST"));
    return this.reply(rejection.status, "hexr_exchange_rejected", rejection.body(), headers);
  }
}
