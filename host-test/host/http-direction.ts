// One direction of an HTTP stream (request: downstream → upstream, response: upstream →
// downstream) as Envoy's filter manager runs it around a single Wasm filter:
//
// headers  callback result → Continue: headers go on (and the filter loses access to them)
//          Pause: StopIteration if the plugin config allows it (allow_on_headers_stop_iteration),
//                 otherwise StopAllIterationAndWatermark — Envoy's default for ABI 0.2.x, under
//                 which body data is held back from the filter until it continues the stream.
// body     delivered only when the headers are not stopped-all. Pause = StopIterationAndBuffer:
//          Envoy keeps the data and the next call sees everything buffered so far (body_size is
//          the total). Continue forwards what is buffered (and the headers, if they were stopped).
// continue proxy_continue_stream resumes what is stopped; data held during a stop-all is then
//          delivered to the filter first, as Envoy iterates from the filter that stopped.

import { BodyBuffer } from "./buffers.ts";
import { HeaderMap, HeaderTemplate, type Headers } from "./header-map.ts";

/** The stream around a direction. */
export interface DirectionOwner {
  /** Runs filter callback `name` on the stream's context; the raw action, undefined if not exported. */
  runCallback(name: string, first: number, second?: number): number | undefined;
  /** True once the stream no longer runs `direction` (local reply, reset, completion). */
  halted(direction: HttpDirection): boolean;
  /** The whole message of `direction` went on. */
  forwardedEnd(direction: HttpDirection): void;
}

export interface CallbackNames {
  readonly headers: string;
  readonly body: string;
  readonly trailers: string;
}

/** What left the filter towards the next hop. */
export interface ForwardedMessage {
  readonly headers: Headers;
  readonly body: BodyBuffer;
  trailers: Headers | undefined;
  ended: boolean;
}

type Phase = "awaiting-headers" | "stop-iteration" | "stop-all" | "flowing";

const HEADERS_CONTINUE = 0;
const HEADERS_STOP_ITERATION = 1;
const HEADERS_CONTINUE_AND_DONT_END_STREAM = 2;
const DATA_CONTINUE = 0;
const DATA_STOP_AND_BUFFER = 1;
const DATA_STOP_AND_WATERMARK = 2;

export class HttpDirection {
  private phase: Phase = "awaiting-headers";
  private headerMap: HeaderMap | undefined;
  private trailerMap: HeaderMap | undefined;
  /** The filter's pointers to the maps and body; Envoy drops them once they have gone on. */
  private headersInScope = false;
  private trailersInScope = false;
  private bodyInScope = false;
  /** The body the filter sees; accumulates while it returns Pause. */
  private body = new BodyBuffer();
  private bufferingBody = false;
  /** Data Envoy holds while the filter has stopped all iteration; the filter has not seen it. */
  private readonly held = new BodyBuffer();
  private endedWithHeaders = false;
  private endedWithBody = false;
  private trailersReceived = false;
  private forwardedMessage: ForwardedMessage | undefined;

  constructor(
    private readonly owner: DirectionOwner,
    private readonly callbacks: CallbackNames,
    private readonly allowHeadersStopIteration: boolean,
  ) {}

  get started(): boolean {
    return this.phase !== "awaiting-headers";
  }

  /** Headers and possibly body that went on; undefined while the headers are held. */
  get forwarded(): ForwardedMessage | undefined {
    return this.forwardedMessage;
  }

  /** The header map as the filter sees and changes it (undefined before headers arrive). */
  get headers(): HeaderMap | undefined {
    return this.headerMap;
  }

  headersForFilter(): HeaderMap | undefined {
    return this.headersInScope ? this.headerMap : undefined;
  }

  /** To change them (`create`), Envoy adds trailers in the last body callback if the message has none. */
  trailersForFilter(create: boolean): HeaderMap | undefined {
    if (this.trailersInScope) return this.trailerMap;
    if (create && this.bodyInScope && this.endedWithBody && this.trailerMap === undefined) {
      this.trailerMap = new HeaderMap();
      this.trailersInScope = true;
      return this.trailerMap;
    }
    return undefined;
  }

  bodyForFilter(): BodyBuffer | undefined {
    return this.bodyInScope ? this.body : undefined;
  }

  receiveHeaders(template: HeaderTemplate, endOfStream: boolean): number | undefined {
    this.headerMap = new HeaderMap(template);
    this.headersInScope = true;
    this.endedWithHeaders = endOfStream;
    this.phase = "stop-iteration"; // until the filter's answer says otherwise
    const action = this.owner.runCallback(this.callbacks.headers, this.headerMap.count, endOfStream ? 1 : 0);
    if (this.owner.halted(this)) return action;
    const result = action ?? HEADERS_CONTINUE;
    if (result === HEADERS_CONTINUE || result === HEADERS_CONTINUE_AND_DONT_END_STREAM) {
      this.forwardHeaders();
      if (endOfStream) this.finish();
    } else if (this.forwardedMessage === undefined) {
      // (unless proxy_continue_stream, run right after the callback, already sent them on)
      this.phase = result === HEADERS_STOP_ITERATION && this.allowHeadersStopIteration ? "stop-iteration" : "stop-all";
    }
    return action;
  }

  receiveBody(chunk: Uint8Array, endOfStream: boolean): number | undefined {
    this.endedWithBody = endOfStream;
    if (this.phase === "stop-all") {
      this.held.append(chunk);
      return undefined;
    }
    return this.deliverBody(chunk, endOfStream);
  }

  receiveTrailers(template: HeaderTemplate): number | undefined {
    this.trailerMap = new HeaderMap(template);
    this.trailersReceived = true;
    if (this.phase === "stop-all") return undefined;
    return this.deliverTrailers();
  }

  /** proxy_continue_stream for this direction (run after the VM call, as Envoy defers it). */
  resume(): void {
    this.headersInScope = false;
    this.bodyInScope = false;
    if (this.phase === "stop-all") {
      this.forwardHeaders();
      if (this.endedWithHeaders) return this.finish();
      const held = this.held.drain();
      if (held.byteLength > 0 || this.endedWithBody) this.deliverBody(held, this.endedWithBody);
      if (this.trailersReceived && !this.owner.halted(this)) this.deliverTrailers();
      return;
    }
    if (this.phase === "stop-iteration") this.forwardHeaders();
    this.forwardBody();
    this.bufferingBody = false;
    if (this.endedWithHeaders || this.endedWithBody || this.trailersReceived) this.finish();
  }

  private deliverBody(chunk: Uint8Array, endOfStream: boolean): number | undefined {
    if (!this.bufferingBody) this.body = new BodyBuffer();
    this.body.append(chunk);
    this.bodyInScope = true;
    const action = this.owner.runCallback(this.callbacks.body, this.body.size, endOfStream ? 1 : 0);
    if (this.owner.halted(this)) return action;
    const result = action ?? DATA_CONTINUE;
    if (result === DATA_CONTINUE) {
      this.bodyInScope = false;
      this.bufferingBody = false;
      if (this.phase === "stop-iteration") this.forwardHeaders();
      this.forwardBody();
      if (endOfStream) this.finish();
    } else if (result === DATA_STOP_AND_BUFFER || result === DATA_STOP_AND_WATERMARK) {
      this.bufferingBody = true;
    } else {
      // StopIterationNoBuffer: Envoy keeps nothing; the chunk is gone unless the filter copied it.
      this.bufferingBody = false;
      this.body = new BodyBuffer();
    }
    return action;
  }

  private deliverTrailers(): number | undefined {
    this.trailersInScope = true;
    const action = this.owner.runCallback(this.callbacks.trailers, this.trailerMap!.count);
    if (!this.owner.halted(this) && (action ?? 0) === 0) this.resume();
    return action;
  }

  private forwardHeaders(): void {
    if (this.forwardedMessage !== undefined || this.headerMap === undefined) return;
    this.headersInScope = false;
    this.phase = "flowing";
    this.forwardedMessage = { headers: this.headerMap.snapshot(), body: new BodyBuffer(), trailers: undefined, ended: false };
  }

  private forwardBody(): void {
    this.forwardedMessage?.body.append(this.body.drain());
  }

  private finish(): void {
    const message = this.forwardedMessage;
    if (message === undefined || message.ended) return;
    if (this.trailerMap !== undefined) message.trailers = this.trailerMap.snapshot();
    this.trailersInScope = false;
    message.ended = true;
    this.owner.forwardedEnd(this);
  }
}
