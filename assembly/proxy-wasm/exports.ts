// The callbacks of ABI v0.2.1 that the module exports. Each one only routes to a context;
// an unknown context id is ignored rather than trapping the VM.
import {
  createContext, deleteContext, findRoot, findStream, takeCallOwner,
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
  streamsSinceCollection = 0;
  __collect();
}

export function proxy_on_queue_ready(rootId: u32, queueId: u32): void {
  const root = findRoot(rootId);
  if (root) root.onQueueReady(queueId);
}

export function proxy_on_http_call_response(rootId: u32, token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {
  const stream = takeCallOwner(token);
  if (stream) {
    setEffectiveContext(stream.id);
    stream.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
    return;
  }
  const root = findRoot(rootId);
  if (root) root.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
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

export function proxy_on_response_headers(contextId: u32, numHeaders: u32, endOfStream: bool): Action {
  const stream = findStream(contextId);
  return stream ? stream.onResponseHeaders(numHeaders, endOfStream) : Action.Continue;
}

export function proxy_on_response_body(contextId: u32, bodySize: u32, endOfStream: bool): Action {
  const stream = findStream(contextId);
  return stream ? stream.onResponseBody(bodySize, endOfStream) : Action.Continue;
}

export function proxy_on_response_trailers(contextId: u32, numTrailers: u32): Action {
  const stream = findStream(contextId);
  return stream ? stream.onResponseTrailers(numTrailers) : Action.Continue;
}

export function proxy_on_done(contextId: u32): bool {
  return true;
}

export function proxy_on_log(contextId: u32): void {
  const stream = findStream(contextId);
  if (stream) stream.onLog();
}

// The module runs AssemblyScript's minimal runtime: no collection interrupts a callback (the
// incremental collector spent more time than the whole request on small, steady allocation);
// garbage is collected here, where no managed reference is on the stack.
const STREAMS_PER_COLLECTION: u32 = 64;
let streamsSinceCollection: u32 = 0;

export function proxy_on_delete(contextId: u32): void {
  deleteContext(contextId);
  if (++streamsSinceCollection >= STREAMS_PER_COLLECTION) {
    streamsSinceCollection = 0;
    __collect();
  }
}
