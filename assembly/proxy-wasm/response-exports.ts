// The response-side callbacks of ABI v0.2.1, for a module that reads answers (the LLM filter).
// The exchange filter does not export them (see exports.ts): the host would otherwise enter its VM
// for every answer of every request it passes through.
import { findStream } from "./context";
import { Action } from "./types";

export function proxy_on_response_headers(contextId: u32, numHeaders: u32, endOfStream: bool): Action {
  const stream = findStream(contextId);
  return stream ? stream.onResponseHeaders(numHeaders, endOfStream) : Action.Continue;
}

export function proxy_on_response_body(contextId: u32, bodySize: u32, endOfStream: bool): Action {
  const stream = findStream(contextId);
  return stream ? stream.onResponseBody(bodySize, endOfStream) : Action.Continue;
}

export function proxy_on_log(contextId: u32): void {
  const stream = findStream(contextId);
  if (stream) stream.onLog();
}
