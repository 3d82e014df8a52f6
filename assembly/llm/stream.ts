// One HTTP stream of the LLM route (the LLM filter runs only on that route: envoy/sidecar.yaml).
//   headers ── usage path ─► UsageEndpoint (answered)
//      ├─ no provider endpoint ─► 404
//      └─ LlmDoor.onHeaders ─► refused, or held for the body
//   body ──── buffered to its end (at most max_request_bytes) ─► LlmDoor.onBody ─► refused, or on
//             to the provider with the credential (now, or when resolve/ answers)
//   answer ── passed on untouched, read for usage ─► onLog: recorded once, however it ended
import { HEADER_PREFIX } from "../contract";
import { Rejection, ErrorType } from "../filter/errors";
import { FilterState } from "../filter/state";
import { doorBody, doorTrailers } from "../filter/stream";
import { HttpContext, RootContext } from "../proxy-wasm/context";
import { getBuffer, getHeaderPairs, Header, removeHeadersWithPrefix, sendLocalResponse } from "../proxy-wasm/host";
import { Action, BufferType, MapType } from "../proxy-wasm/types";
import { pathMatchesAt } from "../util/ascii";
import { message } from "../util/message";
import { LLM_USAGE_PATH } from "./contract";
import { LlmDoor, LlmState } from "./door";
import { LlmRoute, parseLlmRoute } from "./route";
import { UsageEndpoint } from "./usage-endpoint";

export class LlmStream extends HttpContext {
  private door: LlmDoor | null = null;

  constructor(id: u32, root: RootContext, private readonly state: FilterState, private readonly llm: LlmState) {
    super(id, root);
  }

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const headers = getHeaderPairs(MapType.HttpRequestHeaders);
    if (headers === null || !headers.find(":path")) return notFound();
    const usage = pathMatchesAt(headers.foundAt, headers.foundSize, LLM_USAGE_PATH);
    const route: LlmRoute | null = usage ? null : parseLlmRoute(String.UTF8.decodeUnsafe(headers.foundAt, <usize>headers.foundSize));
    // Only this filter may speak x-hexr-*, and nothing of it goes to a provider.
    if (headers.hasNameWithPrefix(HEADER_PREFIX)) removeHeadersWithPrefix(MapType.HttpRequestHeaders, HEADER_PREFIX);
    if (usage) return new UsageEndpoint(this.state, this.id, this.llm).onHeaders(headers, endOfStream);
    if (route === null) return notFound();
    const door = new LlmDoor(this.state, this.id, this.llm, route);
    this.door = door;
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

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    const door = this.door;
    if (door !== null && door.forwards) door.onResponseHeaders();
    return Action.Continue;
  }

  onResponseBody(bodySize: u32, endOfStream: bool): Action {
    const door = this.door;
    if (door !== null && door.forwards && bodySize > 0) {
      const chunk = getBuffer(BufferType.HttpResponseBody, 0, bodySize);
      if (chunk !== null) door.onResponseChunk(chunk);
    }
    return Action.Continue;
  }

  onLog(): void {
    const door = this.door;
    if (door !== null) door.onStreamEnd();
  }
}

function notFound(): Action {
  const rejection = new Rejection(404, ErrorType.BadRequest, message("no LLM provider endpoint at this path"));
  sendLocalResponse(404, "hexr_llm_rejected", rejection.body(), [new Header("content-type", "application/json")]);
  return Action.Pause;
}
