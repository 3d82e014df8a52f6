// Root and HTTP stream contexts, the registry that routes host callbacks to them, and the table of
// pending HTTP calls. A filter extends RootContext and HttpContext and overrides only the
// callbacks it needs.
import { Header, httpCall } from "./host";
import { Action } from "./types";

export class RootContext {
  constructor(public readonly id: u32) {}
  onVmStart(vmConfiguration: ArrayBuffer): bool { return true; }
  onConfigure(configuration: ArrayBuffer): bool { return true; }
  onTick(): void {}
  newHttpContext(id: u32): HttpContext { return new HttpContext(id, this); }
  /** A stream of this root has been deleted (its context is gone). */
  onStreamDeleted(): void {}
}

export class HttpContext {
  constructor(public readonly id: u32, public readonly root: RootContext) {}
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestBody(bodySize: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestTrailers(numTrailers: u32): Action { return Action.Continue; }
  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseBody(bodySize: u32, endOfStream: bool): Action { return Action.Continue; }
  /** The stream is over, however it ended (answered, reset, or cut off by either side). */
  onLog(): void {}
}

/** Whoever dispatched an HTTP call, told of its answer. */
export interface HttpCallHandler {
  /** The context the answer runs in while it is alive: a stream's id, or 0 for background work. */
  callContextId(): u32;
  /** numHeaders is 0 when Envoy reset the call. */
  onHttpCallResponse(numHeaders: u32, bodySize: u32): void;
}

/** Dispatches an HTTP call; its answer goes to `handler` (0 when the host refused the call). */
export function dispatchHttpCall(
  cluster: string, headers: Header[], body: Uint8Array | null, timeoutMs: u32, handler: HttpCallHandler,
): u32 {
  const token = httpCall(cluster, headers, body, timeoutMs);
  if (token != 0) pendingCalls.set(token, handler);
  return token;
}

type RootFactory = (id: u32) => RootContext;
let rootFactory: RootFactory = (id: u32): RootContext => new RootContext(id);

/** Installs the filter's root context; called once from the module's top level. */
export function setRootContextFactory(factory: RootFactory): void {
  rootFactory = factory;
}

/** One root context per plugin in this VM (Envoy creates one per filter configuration). */
const roots = new Array<RootContext>();
const streams = new Map<u32, HttpContext>();
const pendingCalls = new Map<u32, HttpCallHandler>();

export function createContext(id: u32, parentId: u32): void {
  if (parentId == 0) {
    roots.push(rootFactory(id));
    return;
  }
  const root = findRoot(parentId);
  if (root !== null) streams.set(id, root.newHttpContext(id));
}

export function findRoot(id: u32): RootContext | null {
  for (let i = 0; i < roots.length; i++) {
    if (roots[i].id == id) return roots[i];
  }
  return null;
}

export function findStream(id: u32): HttpContext | null {
  return streams.has(id) ? streams.get(id) : null;
}

export function isStreamAlive(id: u32): bool {
  return streams.has(id);
}

/** The handler waiting for this call; the token is forgotten. */
export function takeCallHandler(token: u32): HttpCallHandler | null {
  if (!pendingCalls.has(token)) return null;
  const handler = pendingCalls.get(token);
  pendingCalls.delete(token);
  return handler;
}

export function deleteContext(id: u32): void {
  if (streams.has(id)) {
    const root = streams.get(id).root;
    streams.delete(id);
    root.onStreamDeleted();
    return;
  }
  const root = findRoot(id);
  if (root !== null) roots.splice(roots.indexOf(root), 1);
}
