// One HTTP stream, as a small state machine: a request no door serves leaves the VM at its first
// callback; a door's request is read (headers, then the whole body) and handed to the door, which
// answers it with a local reply.
//   headers ── no door ──────────────────────────────► passed through (Continue)
//      └─ door: only the filter speaks x-hexr-*; door.onHeaders ─► answered, the body awaited, or
//         (a forwarding door: the vault's) the request goes on to the router with its identity
//   body ──── too large → 413; at the end of the request ─► door.onBody ─► answered (now or later)
import { HEADER_PREFIX } from "../contract";
import { Door } from "../doors/door";
import { HttpContext, RootContext } from "../proxy-wasm/context";
import { getBuffer, getHeaderPairs, removeHeadersWithPrefix } from "../proxy-wasm/host";
import { Action, BufferType, MapType } from "../proxy-wasm/types";
import { pathMatchesAt } from "../util/ascii";
import { bodyTooLarge } from "./errors";
import { openDoor } from "./routes";
import { FilterState } from "./state";

export class FilterStream extends HttpContext {
  private door: Door | null = null;

  constructor(id: u32, root: RootContext, private state: FilterState) {
    super(id, root);
  }

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    // One host call for every header a door reads (path, method, content type and length, token).
    const headers = getHeaderPairs(MapType.HttpRequestHeaders);
    if (headers === null || !headers.find(":path")) return Action.Continue;
    const trapPath = this.state.config.debugTrapPath;
    if (trapPath !== null && pathMatchesAt(headers.foundAt, headers.foundSize, trapPath)) unreachable();
    const door = openDoor(this.state, headers.foundAt, headers.foundSize, this.id);
    if (door === null) return Action.Continue;
    this.door = door;
    // Only this filter may speak x-hexr-*: whatever a client sent under that prefix is dropped.
    if (headers.hasNameWithPrefix(HEADER_PREFIX)) removeHeadersWithPrefix(MapType.HttpRequestHeaders, HEADER_PREFIX);
    return door.onHeaders(headers, endOfStream);
  }

  onRequestBody(bodySize: u32, endOfStream: bool): Action {
    const door = this.door;
    return door === null ? Action.Continue : doorBody(door, bodySize, endOfStream);
  }

  onRequestTrailers(numTrailers: u32): Action {
    const door = this.door;
    return door === null ? Action.Continue : doorTrailers(door);
  }
}

/**
 * A door's request body, as every filter's stream reads it: passed on once the door forwards the
 * request, held until it ends (413 past the door's limit), then handed to the door whole.
 */
export function doorBody(door: Door, bodySize: u32, endOfStream: bool): Action {
  if (door.forwards) return Action.Continue;
  if (!door.expectsBody) return Action.Pause;
  if (bodySize > <u32>door.maxBodyBytes()) return door.reject(bodyTooLarge());
  if (!endOfStream) return Action.Pause;
  return handBody(door, bodySize);
}

/** Trailers end the request: the body so far is all there is. */
export function doorTrailers(door: Door): Action {
  if (door.forwards) return Action.Continue;
  if (!door.expectsBody) return Action.Pause;
  return handBody(door, <u32>door.maxBodyBytes() + 1);
}

function handBody(door: Door, bodySize: u32): Action {
  const body = bodySize > 0 ? getBuffer(BufferType.HttpRequestBody, 0, bodySize) : null;
  if (body !== null && body.byteLength > door.maxBodyBytes()) return door.reject(bodyTooLarge());
  return door.onBody(body);
}
