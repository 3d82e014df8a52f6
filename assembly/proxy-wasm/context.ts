// Root (plugin) and HTTP stream contexts, and the registry that routes host callbacks to them.
// A filter extends RootContext and HttpContext and overrides only the callbacks it needs.
import { Header, httpCall } from "./host";
import { Action } from "./types";

export class RootContext {
  constructor(public readonly id: u32) {}
  onVmStart(vmConfiguration: ArrayBuffer): bool { return true; }
  onConfigure(configuration: ArrayBuffer): bool { return true; }
  onTick(): void {}
  onQueueReady(queueId: u32): void {}
  /** Answers to calls this root dispatched itself (fire-and-forget work such as cache write-through). */
  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {}
  newHttpContext(id: u32): HttpContext { return new HttpContext(id, this); }

  dispatchHttpCall(cluster: string, headers: Header[], body: Uint8Array | null, timeoutMs: u32): u32 {
    return httpCall(cluster, headers, body, timeoutMs);
  }
}

export class HttpContext {
  constructor(public readonly id: u32, public readonly root: RootContext) {}
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestBody(bodySize: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestTrailers(numTrailers: u32): Action { return Action.Continue; }
  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseBody(bodySize: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseTrailers(numTrailers: u32): Action { return Action.Continue; }
  /** Answers to calls this stream dispatched; the stream is the effective context while it runs. */
  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: u32, numTrailers: u32): void {}
  onLog(): void {}

  /** Dispatches an HTTP call whose answer is routed back to this stream (0 when the host refused it). */
  dispatchHttpCall(cluster: string, headers: Header[], body: Uint8Array | null, timeoutMs: u32): u32 {
    const token = httpCall(cluster, headers, body, timeoutMs);
    if (token != 0) callOwners.set(token, this);
    return token;
  }
}

type RootFactory = (id: u32) => RootContext;
let rootFactory: RootFactory = (id: u32): RootContext => new RootContext(id);

/** Installs the filter's root context; called once from the module's top level. */
export function setRootContextFactory(factory: RootFactory): void {
  rootFactory = factory;
}

/** One root context per plugin in this VM (Envoy creates one per filter configuration). */
export const roots = new Array<RootContext>();
export const streams = new Map<u32, HttpContext>();
/** HTTP call token → the stream waiting for it. */
export const callOwners = new Map<u32, HttpContext>();

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

/** The stream waiting for this call, if it is still alive; the token is forgotten either way. */
export function takeCallOwner(token: u32): HttpContext | null {
  if (!callOwners.has(token)) return null;
  const owner = callOwners.get(token);
  callOwners.delete(token);
  return findStream(owner.id) === owner ? owner : null;
}

export function deleteContext(id: u32): void {
  if (streams.has(id)) {
    streams.delete(id);
    return;
  }
  const root = findRoot(id);
  if (root !== null) roots.splice(roots.indexOf(root), 1);
}
