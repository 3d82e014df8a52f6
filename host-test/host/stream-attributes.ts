// The request.* and response.* attributes Envoy derives from the stream's header maps
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes).
// Envoy's Wasm context evaluates them against the maps the filter can currently reach, so, as
// there, they are not found once the headers have gone on.

import type { HeaderMap } from "./header-map.ts";
import { Int64, serializeProperty } from "./properties.ts";
import { bytesFromBinary } from "./binary-string.ts";
import type { Pair } from "./pairs.ts";
import { serializePairs } from "./pairs.ts";

const REQUEST = "request\0";
const RESPONSE = "response\0";
const HEADERS = "headers";

/** `path` is the guest's path as a binary string; undefined when it names no derived attribute. */
export function streamAttribute(path: string, request: HeaderMap | undefined, response: HeaderMap | undefined): Uint8Array | undefined {
  if (path.startsWith(REQUEST)) return request && requestAttribute(path.slice(REQUEST.length), request);
  if (path.startsWith(RESPONSE)) return response && responseAttribute(path.slice(RESPONSE.length), response);
  return undefined;
}

function requestAttribute(name: string, headers: HeaderMap): Uint8Array | undefined {
  const value = (header: string) => {
    const found = headers.get(header);
    return found === undefined ? undefined : bytesFromBinary(found);
  };
  const path = headers.get(":path");
  switch (name) {
    case "path":
      return value(":path");
    case "url_path":
      return path === undefined ? undefined : bytesFromBinary(path.split("?")[0]);
    case "query":
      return path === undefined ? undefined : bytesFromBinary(path.includes("?") ? path.slice(path.indexOf("?") + 1) : "");
    case "host":
      return value(":authority");
    case "scheme":
      return value(":scheme");
    case "method":
      return value(":method");
    case "referer":
      return value("referer");
    case "useragent":
      return value("user-agent");
    case "id":
      return value("x-request-id");
    default:
      return headerAttribute(name, headers);
  }
}

function responseAttribute(name: string, headers: HeaderMap): Uint8Array | undefined {
  if (name === "code") {
    const status = Number(headers.get(":status"));
    return Number.isInteger(status) ? serializeProperty(new Int64(BigInt(status))) : undefined;
  }
  return headerAttribute(name, headers);
}

/** `headers` is the whole map (pairs, repeated names joined by ","), `headers\0name` one header. */
function headerAttribute(name: string, headers: HeaderMap): Uint8Array | undefined {
  if (name === HEADERS) return serializePairs(joinedByName(headers.entries()));
  if (!name.startsWith(`${HEADERS}\0`)) return undefined;
  const wanted = name.slice(HEADERS.length + 1);
  const joined = joinedByName(headers.entries()).find(([header]) => header === wanted);
  return joined && bytesFromBinary(joined[1]);
}

function joinedByName(pairs: readonly Pair[]): Pair[] {
  const byName = new Map<string, string>();
  for (const [name, value] of pairs) byName.set(name, byName.has(name) ? `${byName.get(name)},${value}` : value);
  return [...byName];
}
