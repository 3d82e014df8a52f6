// The callbacks of ABI v0.2.1 that the module exports. Each one only routes to a context; an
// unknown context id is ignored rather than trapping the VM. Callbacks the filter has no use for
// (response headers, body and trailers, queues, on_done, on_log) are not exported at all: the host
// then never enters the VM for them (proxy-wasm-cpp-host src/context.cc skips a callback whose
// export is missing), which keeps requests the filter does not serve out of the VM.
import {
  createContext, deleteContext, findRoot, findStream, isStreamAlive, takeCallHandler,
} from "./context";
import { allocateForHost, getBuffer, setEffectiveContext } from "./host";
import { Action, BufferType } from "./types";

export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_memory_allocate(size: usize): usize {
  return allocateForHost(size);
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {
  createContext(contextId, parentContextId);
}

function readBuffer(type: BufferType, size: u32): ArrayBuffer {
  if (size == 0) return new ArrayBuffer(0);
  const data = getBuffer(type, 0, size);
  return data ? data : new ArrayBuffer(0);
}

export function proxy_on_vm_start(rootId: u32, vmConfigurationSize: u32): bool {
  const root = findRoot(rootId);
  return root ? root.onVmStart(readBuffer(BufferType.VmConfiguration, vmConfigurationSize)) : false;
}

export function proxy_on_configure(rootId: u32, configurationSize: u32): bool {
  const root = findRoot(rootId);
  return root ? root.onConfigure(readBuffer(BufferType.PluginConfiguration, configurationSize)) : false;
}

export function proxy_on_tick(rootId: u32): void {
  const root = findRoot(rootId);
  if (root) root.onTick();
}

export function proxy_on_http_call_response(rootId: u32, token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
  const handler = takeCallHandler(token);
  if (handler === null) return;
  // The answer runs as the stream that asked, so its local reply goes to that stream; if the agent
  // has gone, it runs as the root (the handler still settles shared state such as claims).
  const contextId = handler.callContextId();
  if (contextId != 0 && isStreamAlive(contextId)) setEffectiveContext(contextId);
  handler.onHttpCallResponse(numHeaders, bodySize);
}

export function proxy_on_request_headers(contextId: u32, numHeaders: u32, endOfStream: bool): Action {
  const stream = findStream(contextId);
  return stream ? stream.onRequestHeaders(numHeaders, endOfStream) : Action.Continue;
}

export function proxy_on_request_body(contextId: u32, bodySize: u32, endOfStream: bool): Action {
  const stream = findStream(contextId);
  return stream ? stream.onRequestBody(bodySize, endOfStream) : Action.Continue;
}

export function proxy_on_request_trailers(contextId: u32, numTrailers: u32): Action {
  const stream = findStream(contextId);
  return stream ? stream.onRequestTrailers(numTrailers) : Action.Continue;
}

export function proxy_on_delete(contextId: u32): void {
  deleteContext(contextId);
}
