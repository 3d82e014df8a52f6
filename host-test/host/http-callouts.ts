// Outgoing proxy_http_call requests. Each stays pending until the test answers it, resets it, or
// its timeout passes on the virtual clock. Outcomes reach the guest as Envoy delivers them:
//   answered  → proxy_on_http_call_response(root, token, #headers incl. :status, body size, #trailers)
//   reset     → (root, token, 0, 0, 0): Envoy's onHttpCallFailure, nothing readable
//   timed out → Envoy's async client answers it itself: 504, text/plain "upstream request timeout"

import { bytesFromText, textFromBytes } from "./binary-string.ts";
import { HostMisuse } from "./errors.ts";
import { HeaderMap, type HeaderInput, Headers, HeaderTemplate } from "./header-map.ts";
import type { Timer } from "./virtual-clock.ts";

export interface HttpCallResponse {
  status: number;
  headers?: HeaderInput;
  body?: string | Uint8Array;
  trailers?: HeaderInput;
}

/** What the guest can read during proxy_on_http_call_response. */
export interface DeliveredResponse {
  readonly headers: HeaderMap;
  readonly body: Uint8Array;
  readonly trailers: HeaderMap;
}

export type CalloutState = "pending" | "answered" | "reset" | "timed-out" | "cancelled";

/** How a callout reaches its VM; `response` undefined means the call failed. */
export type CalloutDelivery = (callout: HttpCallout, response: DeliveredResponse | undefined) => void;

const TIMEOUT_BODY = "upstream request timeout";

export class HttpCallout {
  private stateValue: CalloutState = "pending";
  private timer: Timer | undefined;

  constructor(
    readonly token: number,
    /** Which VM of the host made the call (0-based start order). */
    readonly vmIndex: number,
    readonly cluster: string,
    /** The request as Envoy sends it: names lower-cased, content-length added for a body. */
    readonly headers: Headers,
    readonly body: Uint8Array,
    readonly trailers: Headers,
    /** 0 = no timeout. */
    readonly timeoutMs: number,
    private readonly deliver: CalloutDelivery,
  ) {}

  get state(): CalloutState {
    return this.stateValue;
  }

  get pending(): boolean {
    return this.stateValue === "pending";
  }

  get method(): string | undefined {
    return this.headers.get(":method");
  }

  get path(): string | undefined {
    return this.headers.get(":path");
  }

  get authority(): string | undefined {
    return this.headers.get(":authority");
  }

  get bodyText(): string {
    return textFromBytes(this.body);
  }

  /** Arms the timeout on `schedule` (the host's clock). */
  armTimeout(schedule: (delayMs: number, fire: () => void) => Timer): void {
    if (this.timeoutMs > 0) this.timer = schedule(this.timeoutMs, () => this.timeOut());
  }

  respond(response: HttpCallResponse): void {
    const headers = new HeaderMap(HeaderTemplate.fromPairs([[":status", String(response.status)], ...HeaderTemplate.of(response.headers ?? {}).pairs]));
    const body = typeof response.body === "string" ? bytesFromText(response.body) : (response.body ?? new Uint8Array(0));
    this.finish("answered", { headers, body, trailers: new HeaderMap(HeaderTemplate.of(response.trailers ?? {})) });
  }

  /** The connection failed or was reset: delivered with no headers, as Envoy's onHttpCallFailure. */
  reset(): void {
    this.finish("reset", undefined);
  }

  /** The VM went away (failed): Envoy cancels its outstanding requests without a callback. */
  cancel(): void {
    this.settle("cancelled");
  }

  private timeOut(): void {
    const headers = HeaderTemplate.of([
      [":status", "504"],
      ["content-length", String(TIMEOUT_BODY.length)],
      ["content-type", "text/plain"],
    ]);
    this.finish("timed-out", { headers: new HeaderMap(headers), body: bytesFromText(TIMEOUT_BODY), trailers: new HeaderMap() });
  }

  private finish(state: CalloutState, response: DeliveredResponse | undefined): void {
    this.settle(state);
    this.deliver(this, response);
  }

  private settle(state: CalloutState): void {
    if (this.stateValue !== "pending") throw new HostMisuse(`http call ${this.token} to ${this.cluster} is already ${this.stateValue}`);
    this.stateValue = state;
    this.timer?.cancel();
  }
}
