// The "env" functions of proxy-wasm ABI v0.2.1, with the argument checks and status codes of
// proxy-wasm-cpp-host (src/exports.cc) and Envoy's context. Every pointer the guest passes is
// checked; a bad one yields InvalidMemoryAccess, never an exception in the host.

import { BufferType, LogLevel, MapType, Status, StreamType } from "./abi.ts";
import { HeaderMap, Headers, HeaderTemplate } from "./header-map.ts";
import { HttpCallout } from "./http-callouts.ts";
import type { Vm } from "./vm.ts";

const MAX_BUFFER_TYPE = BufferType.CallData;
const MAX_MAP_TYPE = MapType.HttpCallResponseTrailers;
const MAX_STREAM_TYPE = StreamType.Upstream;
/** proxy_get_status during a failed http call: cpp-host's WasmResult::BrokenConnection, "reset". */
const BROKEN_CONNECTION = 11;
const EMPTY = new Uint8Array(0);

export function proxyImports(vm: Vm): WebAssembly.ModuleImports {
  const memory = () => vm.memory;
  const host = vm.host;
  const u32 = (value: number) => value >>> 0;

  return {
    // ---- logging and time ----

    proxy_log(level: number, messagePtr: number, messageSize: number): Status {
      const message = memory().utf8(u32(messagePtr), u32(messageSize));
      if (message === undefined) return Status.InvalidMemoryAccess;
      if (u32(level) > LogLevel.Critical) return Status.BadArgument;
      vm.log(level, message, "proxy_log");
      return Status.Ok;
    },

    proxy_get_log_level(levelPtr: number): Status {
      return memory().writeU32(u32(levelPtr), host.logLevel) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_get_current_time_nanoseconds(timePtr: number): Status {
      return memory().writeU64(u32(timePtr), host.clock.realtimeNanos) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_set_tick_period_milliseconds(periodMs: number): Status {
      vm.effective.root.setTickPeriod(u32(periodMs));
      return Status.Ok;
    },

    // ---- properties ----

    proxy_get_property(pathPtr: number, pathSize: number, valuePtrPtr: number, valueSizePtr: number): Status {
      const path = memory().latin1(u32(pathPtr), u32(pathSize));
      if (path === undefined) return Status.InvalidMemoryAccess;
      const value = vm.effective.property(path);
      if (value === undefined) return Status.NotFound;
      return memory().returnBytes(value, u32(valuePtrPtr), u32(valueSizePtr)) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_set_property(pathPtr: number, pathSize: number, valuePtr: number, valueSize: number): Status {
      const path = memory().latin1(u32(pathPtr), u32(pathSize));
      const value = memory().copy(u32(valuePtr), u32(valueSize));
      if (path === undefined || value === undefined) return Status.InvalidMemoryAccess;
      return vm.effective.setProperty(path, value);
    },

    // ---- buffers ----

    proxy_get_buffer_bytes(type: number, start: number, length: number, ptrPtr: number, sizePtr: number): Status {
      if (u32(type) > MAX_BUFFER_TYPE) return Status.BadArgument;
      const buffer = vm.effective.buffer(type);
      if (buffer === undefined) return Status.NotFound;
      // cpp-host clamps the range to the buffer rather than refusing it.
      const from = u32(start);
      const size = from > buffer.size ? 0 : Math.min(u32(length), buffer.size - from);
      const bytes = size === 0 ? EMPTY : buffer.read(from, size);
      return memory().returnBytes(bytes, u32(ptrPtr), u32(sizePtr)) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_get_buffer_status(type: number, sizePtr: number, flagsPtr: number): Status {
      if (u32(type) > MAX_BUFFER_TYPE) return Status.BadArgument;
      const buffer = vm.effective.buffer(type);
      if (buffer === undefined) return Status.NotFound;
      return memory().writeU32(u32(sizePtr), buffer.size) && memory().writeU32(u32(flagsPtr), 0) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_set_buffer_bytes(type: number, start: number, length: number, dataPtr: number, dataSize: number): Status {
      if (u32(type) > MAX_BUFFER_TYPE) return Status.BadArgument;
      const buffer = vm.effective.buffer(type);
      if (buffer === undefined) return Status.NotFound;
      const data = memory().copy(u32(dataPtr), u32(dataSize));
      if (data === undefined) return Status.InvalidMemoryAccess;
      return buffer.write(u32(start), u32(length), data);
    },

    // ---- header maps ----

    proxy_get_header_map_pairs(type: number, ptrPtr: number, sizePtr: number): Status {
      if (u32(type) > MAX_MAP_TYPE) return Status.BadArgument;
      const map = vm.effective.readableMap(type);
      if (map === undefined || map.count === 0) {
        return memory().returnBytes(EMPTY, u32(ptrPtr), u32(sizePtr)) ? Status.Ok : Status.InvalidMemoryAccess;
      }
      return memory().returnBytes(map.serialized(), u32(ptrPtr), u32(sizePtr)) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_set_header_map_pairs(type: number, ptr: number, size: number): Status {
      if (u32(type) > MAX_MAP_TYPE) return Status.BadArgument;
      const pairs = memory().pairs(u32(ptr), u32(size));
      if (pairs === undefined) return Status.InvalidMemoryAccess;
      const map = vm.effective.writableMap(type);
      if (map === undefined) return Status.BadArgument;
      map.replaceAll(pairs);
      return Status.Ok;
    },

    proxy_get_header_map_size(type: number, sizePtr: number): Status {
      if (u32(type) > MAX_MAP_TYPE) return Status.BadArgument;
      const map = vm.effective.writableMap(type);
      if (map === undefined) return Status.BadArgument;
      return memory().writeU32(u32(sizePtr), map.byteSize()) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_get_header_map_value(type: number, keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number): Status {
      if (u32(type) > MAX_MAP_TYPE) return Status.BadArgument;
      const key = memory().latin1(u32(keyPtr), u32(keySize));
      if (key === undefined) return Status.InvalidMemoryAccess;
      const map = vm.effective.readableMap(type);
      if (map === undefined) return Status.BadArgument;
      const value = map.get(key);
      if (value === undefined) return Status.NotFound;
      return memory().returnLatin1(value, u32(valuePtrPtr), u32(valueSizePtr)) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_add_header_map_value(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): Status {
      return changeHeader(type, keyPtr, keySize, valuePtr, valueSize, (map, key, value) => map.add(key, value));
    },

    proxy_replace_header_map_value(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): Status {
      return changeHeader(type, keyPtr, keySize, valuePtr, valueSize, (map, key, value) => map.replace(key, value));
    },

    proxy_remove_header_map_value(type: number, keyPtr: number, keySize: number): Status {
      return changeHeader(type, keyPtr, keySize, 0, 0, (map, key) => map.remove(key));
    },

    // ---- stream control ----

    proxy_send_local_response(
      status: number,
      detailsPtr: number,
      detailsSize: number,
      bodyPtr: number,
      bodySize: number,
      headersPtr: number,
      headersSize: number,
      grpcStatus: number,
    ): Status {
      const details = memory().utf8(u32(detailsPtr), u32(detailsSize));
      const body = memory().copy(u32(bodyPtr), u32(bodySize));
      const headers = memory().pairs(u32(headersPtr), u32(headersSize));
      if (details === undefined || body === undefined || headers === undefined) return Status.InvalidMemoryAccess;
      const pairs = HeaderTemplate.fromPairs(headers).pairs;
      vm.effective.sendLocalResponse({ status: u32(status), details, body, headers: new Headers(pairs), grpcStatus });
      return Status.Ok;
    },

    proxy_continue_stream(type: number): Status {
      if (u32(type) > MAX_STREAM_TYPE) return Status.BadArgument;
      return vm.effective.continueStream(type);
    },

    proxy_close_stream(type: number): Status {
      if (u32(type) > MAX_STREAM_TYPE) return Status.BadArgument;
      return vm.effective.closeStream(type);
    },

    proxy_set_effective_context(contextId: number): Status {
      return vm.setEffectiveContext(u32(contextId)) ? Status.Ok : Status.BadArgument;
    },

    proxy_done(): Status {
      return vm.done() ? Status.Ok : Status.NotFound;
    },

    proxy_get_status(codePtr: number, messagePtrPtr: number, messageSizePtr: number): Status {
      const failed = vm.effective.root.httpCallFailed;
      const message = failed ? "reset" : "";
      const ok = memory().writeU32(u32(codePtr), failed ? BROKEN_CONNECTION : 0) && memory().returnLatin1(message, u32(messagePtrPtr), u32(messageSizePtr));
      return ok ? Status.Ok : Status.InvalidMemoryAccess;
    },

    // ---- HTTP callouts ----

    proxy_http_call(
      upstreamPtr: number,
      upstreamSize: number,
      headersPtr: number,
      headersSize: number,
      bodyPtr: number,
      bodySize: number,
      trailersPtr: number,
      trailersSize: number,
      timeoutMs: number,
      tokenPtr: number,
    ): Status {
      const cluster = memory().latin1(u32(upstreamPtr), u32(upstreamSize));
      const requestHeaders = memory().pairs(u32(headersPtr), u32(headersSize));
      const body = memory().copy(u32(bodyPtr), u32(bodySize));
      const requestTrailers = memory().pairs(u32(trailersPtr), u32(trailersSize));
      if (cluster === undefined || requestHeaders === undefined || body === undefined || requestTrailers === undefined) return Status.InvalidMemoryAccess;
      // cpp-host writes the token slot first, to fail before starting anything.
      if (!memory().writeU32(u32(tokenPtr), 0)) return Status.InvalidMemoryAccess;
      if (timeoutMs < 0 || !host.hasCluster(cluster)) return Status.BadArgument;
      const headers = new HeaderMap(HeaderTemplate.fromPairs(requestHeaders));
      if (headers.get(":path") === undefined || headers.get(":method") === undefined || headers.get(":authority") === undefined) {
        return Status.BadArgument;
      }
      if (body.byteLength > 0) headers.replace("content-length", String(body.byteLength));
      const trailers = new Headers(HeaderTemplate.fromPairs(requestTrailers).pairs);
      const token = vm.takeCalloutToken();
      const callout = new HttpCallout(token, vm.index, cluster, headers.snapshot(), body, trailers, timeoutMs, (call, response) =>
        vm.deliverHttpCallResponse(call, response),
      );
      host.registerCallout(callout);
      memory().writeU32(u32(tokenPtr), token);
      return Status.Ok;
    },

    // gRPC is not emulated: an unknown cluster gets Envoy's ParseFailure, a known one InternalFailure
    // (the host could not start the call); there are never call or stream ids to act on.
    proxy_grpc_call(servicePtr: number, serviceSize: number): Status {
      return grpcStart(servicePtr, serviceSize);
    },

    proxy_grpc_stream(servicePtr: number, serviceSize: number): Status {
      return grpcStart(servicePtr, serviceSize);
    },

    proxy_grpc_send(): Status {
      return Status.BadArgument;
    },

    proxy_grpc_cancel(): Status {
      return Status.BadArgument;
    },

    proxy_grpc_close(): Status {
      return Status.BadArgument;
    },

    // ---- shared data and queues ----

    proxy_get_shared_data(keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number, casPtr: number): Status {
      const key = memory().latin1(u32(keyPtr), u32(keySize));
      if (key === undefined) return Status.InvalidMemoryAccess;
      const entry = host.sharedData.get(key);
      if (entry === undefined) return Status.NotFound;
      const ok = memory().returnBytes(entry.value, u32(valuePtrPtr), u32(valueSizePtr)) && memory().writeU32(u32(casPtr), entry.cas);
      return ok ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_set_shared_data(keyPtr: number, keySize: number, valuePtr: number, valueSize: number, cas: number): Status {
      const key = memory().latin1(u32(keyPtr), u32(keySize));
      const value = memory().copy(u32(valuePtr), u32(valueSize));
      if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
      return host.sharedData.set(key, value, u32(cas));
    },

    proxy_register_shared_queue(namePtr: number, nameSize: number, tokenPtr: number): Status {
      const name = memory().latin1(u32(namePtr), u32(nameSize));
      if (name === undefined) return Status.InvalidMemoryAccess;
      const token = host.queues.register(name, vm, vm.effective.root.id);
      return memory().writeU32(u32(tokenPtr), token) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_resolve_shared_queue(vmIdPtr: number, vmIdSize: number, namePtr: number, nameSize: number, tokenPtr: number): Status {
      const vmId = memory().latin1(u32(vmIdPtr), u32(vmIdSize));
      const name = memory().latin1(u32(namePtr), u32(nameSize));
      if (vmId === undefined || name === undefined) return Status.InvalidMemoryAccess;
      const token = host.queues.resolve(vmId, name);
      if (token === undefined) return Status.NotFound;
      return memory().writeU32(u32(tokenPtr), token) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_enqueue_shared_queue(token: number, dataPtr: number, dataSize: number): Status {
      const data = memory().copy(u32(dataPtr), u32(dataSize));
      if (data === undefined) return Status.InvalidMemoryAccess;
      return host.queues.enqueue(u32(token), data);
    },

    proxy_dequeue_shared_queue(token: number, dataPtrPtr: number, dataSizePtr: number): Status {
      const { status, item } = host.queues.dequeue(u32(token));
      if (item === undefined) return status;
      return memory().returnBytes(item, u32(dataPtrPtr), u32(dataSizePtr)) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    // ---- metrics ----

    proxy_define_metric(type: number, namePtr: number, nameSize: number, idPtr: number): Status {
      const name = memory().latin1(u32(namePtr), u32(nameSize));
      if (name === undefined) return Status.InvalidMemoryAccess;
      const { status, id } = vm.metrics.define(u32(type), name);
      if (id === undefined) return status;
      return memory().writeU32(u32(idPtr), id) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    proxy_increment_metric(id: number, delta: bigint): Status {
      return vm.metrics.increment(u32(id), delta);
    },

    proxy_record_metric(id: number, value: bigint): Status {
      return vm.metrics.record(u32(id), value);
    },

    proxy_get_metric(id: number, valuePtr: number): Status {
      const { status, value } = vm.metrics.get(u32(id));
      if (value === undefined) return status;
      return memory().writeU64(u32(valuePtr), BigInt(value)) ? Status.Ok : Status.InvalidMemoryAccess;
    },

    // ---- foreign functions: the host registers none ----

    proxy_call_foreign_function(namePtr: number, nameSize: number, argumentsPtr: number, argumentsSize: number): Status {
      if (!memory().contains(u32(namePtr), u32(nameSize)) || !memory().contains(u32(argumentsPtr), u32(argumentsSize))) {
        return Status.InvalidMemoryAccess;
      }
      return Status.NotFound;
    },
  };

  function changeHeader(
    type: number,
    keyPtr: number,
    keySize: number,
    valuePtr: number,
    valueSize: number,
    change: (map: HeaderMap, key: string, value: string) => void,
  ): Status {
    if (u32(type) > MAX_MAP_TYPE) return Status.BadArgument;
    const key = memory().latin1(u32(keyPtr), u32(keySize));
    const value = memory().latin1(u32(valuePtr), u32(valueSize));
    if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
    const map = vm.effective.writableMap(type);
    if (map === undefined) return Status.BadArgument;
    change(map, key, value);
    return Status.Ok;
  }

  function grpcStart(servicePtr: number, serviceSize: number): Status {
    const service = memory().latin1(u32(servicePtr), u32(serviceSize));
    if (service === undefined) return Status.InvalidMemoryAccess;
    return host.hasCluster(service) ? Status.InternalFailure : Status.ParseFailure;
  }
}
