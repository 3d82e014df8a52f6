// An HTTP stream through the filter: the test plays the client (request) and the upstream
// (response); the host plays Envoy's filter manager around the Wasm filter.
//
// Envoy behaviours kept here:
// - proxy_on_context_create runs with the request headers (Context::decodeHeaders → onCreate).
// - A local reply runs after the callback that asked for it. While no response has started it
//   travels the encoder path, so the filter's own proxy_on_response_headers/_body see it; once a
//   response has started it goes straight to the client; once the client has headers, the stream
//   is reset (FilterManager::sendLocalReply).
// - Local reply headers: :status, the filter's headers, then content-length and, if absent,
//   content-type: text/plain for a non-empty body (Utility::sendLocalReply).
// - When the response has gone out (or the stream is reset) the stream ends: proxy_on_log (access
//   log), then proxy_on_done and proxy_on_delete (filter destruction).

import { BufferType, MapType, Status, StreamType } from "./abi.ts";
import { bytesFromText } from "./binary-string.ts";
import { BodyBuffer, type HostBuffer, ReadOnlyBuffer } from "./buffers.ts";
import { Context, type LocalReply, type RootContext } from "./context.ts";
import { HostMisuse } from "./errors.ts";
import { type HeaderInput, type HeaderMap, Headers, HeaderTemplate } from "./header-map.ts";
import { type DirectionOwner, HttpDirection, type ForwardedMessage } from "./http-direction.ts";
import { HttpMessage, HttpResponse } from "./http-message.ts";
import type { Pair } from "./pairs.ts";
import { type Properties, PropertySet } from "./properties.ts";
import { streamAttribute } from "./stream-attributes.ts";
import type { Vm } from "./vm.ts";

export interface HttpStreamOptions {
  /** Attributes Envoy would expose for this stream, e.g. connection.uri_san_peer_certificate or metadata. */
  properties?: Properties;
}

export type StreamState = "open" | "complete" | "reset";

export interface CallbackRecord {
  readonly callback: string;
  /** The raw value returned; undefined for callbacks without a result or not exported. */
  readonly action: number | undefined;
}

type Body = string | Uint8Array;

const REQUEST_CALLBACKS = { headers: "proxy_on_request_headers", body: "proxy_on_request_body", trailers: "proxy_on_request_trailers" };
const RESPONSE_CALLBACKS = { headers: "proxy_on_response_headers", body: "proxy_on_response_body", trailers: "proxy_on_response_trailers" };

export class HttpStream extends Context implements DirectionOwner {
  private readonly requestFlow: HttpDirection;
  private readonly responseFlow: HttpDirection;
  private readonly properties: PropertySet;
  private filterState: Map<string, Uint8Array> | undefined;
  private created = false;
  private stateValue: StreamState = "open";
  /** Decoding stops for good once a local reply is under way. */
  private decodingHalted = false;
  private responseSource: "upstream" | "local" = "upstream";
  private directReply: ForwardedMessage | undefined;
  private readonly localReplyList: LocalReply[] = [];
  private readonly callbackList: CallbackRecord[] = [];
  private readonly continueCounts = { request: 0, response: 0 };

  constructor(vm: Vm, id: number, options: HttpStreamOptions) {
    super(vm, id);
    this.properties = options.properties ? PropertySet.of(options.properties) : PropertySet.EMPTY;
    this.requestFlow = new HttpDirection(this, REQUEST_CALLBACKS, vm.host.allowOnHeadersStopIteration);
    this.responseFlow = new HttpDirection(this, RESPONSE_CALLBACKS, vm.host.allowOnHeadersStopIteration);
  }

  get root(): RootContext {
    return this.vm.root;
  }

  // ---- driving the stream (the test is the client and the upstream) ----

  /** The client's request headers. Returns the filter's action (undefined if not delivered). */
  sendRequestHeaders(headers: HeaderInput, options: { endOfStream?: boolean } = {}): number | undefined {
    if (this.requestFlow.started) throw new HostMisuse("request headers were already sent on this stream");
    this.vm.adoptContext(this);
    this.created = true;
    this.vm.invoke(this, "proxy_on_context_create", this.id, this.root.id);
    return this.requestFlow.receiveHeaders(HeaderTemplate.of(headers), options.endOfStream ?? false);
  }

  /** A chunk of the client's body; by default the last one. */
  sendRequestBody(body: Body, options: { endOfStream?: boolean } = {}): number | undefined {
    if (!this.requestFlow.started) throw new HostMisuse("request body before request headers");
    if (!this.accepting(this.decodingHalted)) return undefined;
    return this.requestFlow.receiveBody(toBytes(body), options.endOfStream ?? true);
  }

  sendRequestTrailers(trailers: HeaderInput): number | undefined {
    if (!this.requestFlow.started) throw new HostMisuse("request trailers before request headers");
    if (!this.accepting(this.decodingHalted)) return undefined;
    return this.requestFlow.receiveTrailers(HeaderTemplate.of(trailers));
  }

  /** The upstream's response headers; the filter must have passed the request on. */
  sendResponseHeaders(headers: HeaderInput, options: { endOfStream?: boolean } = {}): number | undefined {
    if (!this.accepting(this.responseFlow.started)) return undefined;
    if (this.requestFlow.forwarded === undefined) throw new HostMisuse("a response before the filter passed the request on");
    return this.responseFlow.receiveHeaders(HeaderTemplate.of(headers), options.endOfStream ?? false);
  }

  /** A chunk of the upstream's body; by default the last one. */
  sendResponseBody(body: Body, options: { endOfStream?: boolean } = {}): number | undefined {
    if (!this.responseFlow.started) throw new HostMisuse("response body before response headers");
    if (!this.accepting(this.responseSource === "local")) return undefined;
    return this.responseFlow.receiveBody(toBytes(body), options.endOfStream ?? true);
  }

  sendResponseTrailers(trailers: HeaderInput): number | undefined {
    if (!this.responseFlow.started) throw new HostMisuse("response trailers before response headers");
    if (!this.accepting(this.responseSource === "local")) return undefined;
    return this.responseFlow.receiveTrailers(HeaderTemplate.of(trailers));
  }

  /** The client went away (downstream reset). */
  resetByClient(): void {
    if (this.stateValue === "open") this.end("reset");
  }

  // ---- what happened ----

  get state(): StreamState {
    return this.stateValue;
  }

  /**
   * The request as the filter passed it on (towards the next filter and the router); undefined
   * while, or if ever, the filter holds its headers. `ended` tells whether all of it went on.
   */
  get forwardedRequest(): HttpMessage | undefined {
    const forwarded = this.requestFlow.forwarded;
    return forwarded && new HttpMessage(forwarded);
  }

  /** The response as the client received it (from the upstream or a local reply). */
  get response(): HttpResponse | undefined {
    if (this.directReply !== undefined) return new HttpResponse(this.directReply, "local");
    const forwarded = this.responseFlow.forwarded;
    return forwarded && new HttpResponse(forwarded, this.responseSource);
  }

  /** Every proxy_send_local_response the filter made on this stream. */
  get localReplies(): readonly LocalReply[] {
    return this.localReplyList;
  }

  /** The first local reply, the one that decided the response. */
  get localReply(): LocalReply | undefined {
    return this.localReplyList[0];
  }

  /** Every stream callback in order, with what it returned. */
  get callbacks(): readonly CallbackRecord[] {
    return this.callbackList;
  }

  /** How often the filter called proxy_continue_stream for each direction. */
  get continueCalls(): { readonly request: number; readonly response: number } {
    return this.continueCounts;
  }

  /** The request headers as the filter has left them (also while it holds them). */
  requestHeaders(): Headers | undefined {
    return this.requestFlow.headers?.snapshot();
  }

  // ---- the ABI's view of this context ----

  override buffer(type: BufferType): HostBuffer | undefined {
    if (type === BufferType.HttpRequestBody) return this.requestFlow.bodyForFilter() ?? ReadOnlyBuffer.EMPTY;
    if (type === BufferType.HttpResponseBody) return this.responseFlow.bodyForFilter() ?? ReadOnlyBuffer.EMPTY;
    return super.buffer(type);
  }

  override readableMap(type: MapType): HeaderMap | undefined {
    return this.streamMap(type, false) ?? super.readableMap(type);
  }

  override writableMap(type: MapType): HeaderMap | undefined {
    return this.streamMap(type, true);
  }

  override property(path: string): Uint8Array | undefined {
    return (
      this.properties.lookup(path) ??
      streamAttribute(path, this.requestFlow.headersForFilter(), this.responseFlow.headersForFilter()) ??
      super.property(path) ??
      this.filterState?.get(path)
    );
  }

  /** Envoy keeps it as filter state "wasm.<path>", which get_property finds by that top-level name. */
  override setProperty(path: string, value: Uint8Array): Status {
    (this.filterState ??= new Map()).set(path, value);
    return Status.Ok;
  }

  override continueStream(type: StreamType): Status {
    if (type === StreamType.HttpRequest || type === StreamType.HttpResponse) {
      const flow = type === StreamType.HttpRequest ? this.requestFlow : this.responseFlow;
      if (type === StreamType.HttpRequest) this.continueCounts.request++;
      else this.continueCounts.response++;
      this.vm.defer(() => {
        if (this.stateValue === "open") flow.resume();
      });
      return Status.Ok;
    }
    return super.continueStream(type);
  }

  override closeStream(type: StreamType): Status {
    if (type === StreamType.HttpRequest || type === StreamType.HttpResponse) {
      this.vm.defer(() => {
        if (this.stateValue === "open") this.end("reset");
      });
    }
    return Status.Ok;
  }

  override sendLocalResponse(reply: LocalReply): void {
    this.localReplyList.push(reply);
    this.vm.defer(() => this.dispatchLocalReply(reply));
  }

  // ---- internals ----

  /** @internal (DirectionOwner) */
  runCallback(name: string, first: number, second?: number): number | undefined {
    const index = this.callbackList.push({ callback: name, action: undefined }) - 1;
    const action = this.vm.invoke(this, name, this.id, first, second);
    this.callbackList[index] = { callback: name, action };
    return action;
  }

  /** @internal (DirectionOwner) */
  halted(direction: HttpDirection): boolean {
    if (this.stateValue !== "open") return true;
    return direction === this.requestFlow ? this.decodingHalted : this.directReply !== undefined;
  }

  /** @internal (DirectionOwner): the response reached the client, so the stream is over. */
  forwardedEnd(direction: HttpDirection): void {
    if (direction === this.responseFlow) this.end("complete");
  }

  /** Input for a finished stream, or for a direction a local reply took over, is dropped as Envoy drops it. */
  private accepting(superseded: boolean): boolean {
    return this.stateValue === "open" && !superseded;
  }

  private streamMap(type: MapType, create: boolean): HeaderMap | undefined {
    switch (type) {
      case MapType.HttpRequestHeaders:
        return this.requestFlow.headersForFilter();
      case MapType.HttpRequestTrailers:
        return this.requestFlow.trailersForFilter(create);
      case MapType.HttpResponseHeaders:
        return this.responseFlow.headersForFilter();
      case MapType.HttpResponseTrailers:
        return this.responseFlow.trailersForFilter(create);
      default:
        return undefined;
    }
  }

  private dispatchLocalReply(reply: LocalReply): void {
    if (this.stateValue !== "open") return;
    this.decodingHalted = true;
    const headers = HeaderTemplate.fromPairs(localReplyHeaders(reply));
    // A HEAD request gets the headers the body would have had, and no body (Utility::encodeLocalReply).
    const body = this.requestFlow.headers?.get(":method") === "HEAD" ? new Uint8Array(0) : reply.body;
    if (!this.responseFlow.started) {
      this.responseSource = "local";
      this.responseFlow.receiveHeaders(headers, body.byteLength === 0);
      if (body.byteLength > 0 && this.stateValue === "open" && this.directReply === undefined) this.responseFlow.receiveBody(body, true);
    } else if (this.responseFlow.forwarded === undefined) {
      const replyBody = new BodyBuffer();
      replyBody.append(body);
      this.directReply = { headers: new Headers(headers.pairs), body: replyBody, trailers: undefined, ended: true };
      this.end("complete");
    } else {
      this.vm.host.note(`stream ${this.id}: local reply ${reply.status} after the response headers went out: reset, as Envoy does`);
      this.end("reset");
    }
  }

  private end(state: "complete" | "reset"): void {
    if (this.stateValue !== "open") return;
    this.stateValue = state;
    if (!this.created) return;
    this.vm.invoke(this, "proxy_on_log", this.id);
    this.vm.invoke(this, "proxy_on_done", this.id);
    this.vm.invoke(this, "proxy_on_delete", this.id);
    this.vm.forgetContext(this);
  }
}

function toBytes(body: Body): Uint8Array {
  return typeof body === "string" ? bytesFromText(body) : body;
}

function localReplyHeaders(reply: LocalReply): Pair[] {
  const pairs: Pair[] = [[":status", String(reply.status)]];
  for (const [name, value] of reply.headers.rawEntries()) pairs.push([name, value]);
  if (reply.body.byteLength === 0) return pairs.filter(([name]) => name !== "content-length" && name !== "content-type");
  const sized = pairs.filter(([name]) => name !== "content-length");
  sized.push(["content-length", String(reply.body.byteLength)]);
  if (!sized.some(([name]) => name === "content-type")) sized.push(["content-type", "text/plain"]);
  return sized;
}
