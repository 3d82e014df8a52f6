// Contexts as the ABI functions see them. A hostcall acts on the "effective" context (the callback's
// own, or the one proxy_set_effective_context chose); what it may reach depends on the context's
// kind and on the callback in progress, with Envoy's answers (source/extensions/common/wasm/context.cc)
// for everything that is out of reach.

import { BufferType, MapType, Status, StreamType } from "./abi.ts";
import { type HostBuffer, ReadOnlyBuffer } from "./buffers.ts";
import type { HeaderMap, Headers } from "./header-map.ts";
import type { DeliveredResponse } from "./http-callouts.ts";
import type { Timer } from "./virtual-clock.ts";
import type { Vm } from "./vm.ts";

/** One proxy_send_local_response call. */
export interface LocalReply {
  readonly status: number;
  readonly details: string;
  readonly body: Uint8Array;
  /** The additional headers the filter passed (names lower-cased). */
  readonly headers: Headers;
  readonly grpcStatus: number;
}

export abstract class Context {
  constructor(
    readonly vm: Vm,
    readonly id: number,
  ) {}

  abstract get root(): RootContext;

  /** undefined = NotFound. Bodies out of reach read as empty, as in Envoy. */
  buffer(type: BufferType): HostBuffer | undefined {
    switch (type) {
      case BufferType.VmConfiguration:
        return this.vm.vmConfiguration;
      case BufferType.PluginConfiguration:
        return this.root.pluginConfigurationInScope;
      case BufferType.HttpCallResponseBody: {
        const response = this.root.httpCallResponse;
        return response && new ReadOnlyBuffer(response.body);
      }
      default:
        return ReadOnlyBuffer.EMPTY;
    }
  }

  /** A map the context can read; undefined when it has none (BadArgument, or empty pairs). */
  readableMap(type: MapType): HeaderMap | undefined {
    if (type === MapType.HttpCallResponseHeaders) return this.root.httpCallResponse?.headers;
    if (type === MapType.HttpCallResponseTrailers) return this.root.httpCallResponse?.trailers;
    return undefined;
  }

  /** A map the context can change; undefined = BadArgument. */
  writableMap(_type: MapType): HeaderMap | undefined {
    return undefined;
  }

  property(path: string): Uint8Array | undefined {
    return this.vm.commonProperty(path);
  }

  /** Envoy stores properties in the stream's filter state; a root context has none. */
  setProperty(_path: string, _value: Uint8Array): Status {
    return Status.NotFound;
  }

  /** A context without a stream has nothing to continue, which Envoy reports as Ok. */
  continueStream(type: StreamType): Status {
    return type === StreamType.Upstream ? Status.Unimplemented : Status.Ok;
  }

  closeStream(_type: StreamType): Status {
    return Status.Ok;
  }

  /** Envoy sends a local reply only through a stream's decoder callbacks; elsewhere it is dropped. */
  sendLocalResponse(reply: LocalReply): void {
    this.vm.host.note(`VM ${this.vm.index}: proxy_send_local_response(${reply.status}) on context ${this.id}, which has no stream: dropped, as Envoy does`);
  }
}

export class RootContext extends Context {
  /** Set only while proxy_on_configure runs. */
  pluginConfigurationInScope: ReadOnlyBuffer | undefined;
  /** Set only while proxy_on_http_call_response runs. */
  httpCallResponse: DeliveredResponse | undefined;
  /** True while proxy_on_http_call_response reports a failed call (proxy_get_status). */
  httpCallFailed = false;
  private tick: Timer | undefined;

  get root(): RootContext {
    return this;
  }

  /** proxy_set_tick_period_milliseconds: 0 stops the timer; a new period restarts it. */
  setTickPeriod(periodMs: number): void {
    this.tick?.cancel();
    this.tick = undefined;
    if (periodMs === 0) return;
    const schedule = () => {
      this.tick = this.vm.host.clock.schedule(periodMs, () => {
        schedule();
        this.vm.deliverTick(this);
      });
    };
    schedule();
  }

  stopTicks(): void {
    this.tick?.cancel();
  }
}
