// L3: the call to the Credential Injector (over the injector cluster, mTLS in production) and the
// reading of its answer. Used by a request that missed every cache and by refresh-ahead.
import {
  HEADER_AGENT, HEADER_EXPIRES_AT, HEADER_IDENTITY_SOURCE, HEADER_REGION, HEADER_ROLE, HEADER_SERVICE, HEADER_SPIFFE_ID, HEADER_TENANT,
} from "../contract";
import { errorTypeNamed, ErrorType, Rejection, upstreamFailure } from "../filter/errors";
import { FilterConfig } from "../input/config";
import { CredentialRequest } from "../input/credential-request";
import { identitySourceName } from "../input/identity";
import { getBuffer, getHeaderBytes, Header } from "../proxy-wasm/host";
import { BufferType, MapType } from "../proxy-wasm/types";
import { decimalValue } from "../util/ascii";
import { JsonKind, JsonValue, parseJson } from "../util/json";

/** What the injector needs to know: who asks (verified), for what, and the JWT-SVID it re-verifies. */
export class InjectorCall {
  constructor(public headers: Header[], public body: Uint8Array) {}
}

export function injectorCall(config: FilterConfig, request: CredentialRequest, agentToken: ArrayBuffer | null): InjectorCall {
  const spiffe = request.identity.spiffe;
  const headers: Header[] = [
    new Header(":method", "POST"),
    new Header(":path", config.injectorPath),
    new Header(":authority", config.injector.authority),
    new Header("content-type", "application/json"),
    new Header(HEADER_SPIFFE_ID, spiffe.uri),
    new Header(HEADER_TENANT, spiffe.tenant),
    new Header(HEADER_AGENT, spiffe.agent),
    new Header(HEADER_ROLE, spiffe.role),
    new Header(HEADER_IDENTITY_SOURCE, identitySourceName(request.identity.source)),
    new Header(HEADER_SERVICE, request.service),
    new Header(HEADER_REGION, request.region),
  ];
  if (agentToken !== null) headers.push(new Header("authorization", String.UTF8.decode(agentToken)));
  // Both values passed the contract's grammars (no quote, no backslash), so no escaping is needed.
  const json = "{\"service\":\"" + request.service + "\",\"region\":\"" + request.region + "\"}";
  return new InjectorCall(headers, Uint8Array.wrap(String.UTF8.encode(json)));
}

/** The injector's answer: a rejection, or else a credential and its expiry (0 when it has none usable). */
export class InjectorAnswer {
  constructor(public rejection: Rejection | null, public credential: Uint8Array, public expiresAt: i64) {}
}

function refusedAnswer(rejection: Rejection): InjectorAnswer {
  return new InjectorAnswer(rejection, new Uint8Array(0), 0);
}

/** Reads the answer to an injector call; no headers means Envoy reset the call. */
export function readInjectorAnswer(numHeaders: u32, bodySize: u32): InjectorAnswer {
  if (numHeaders == 0) return refusedAnswer(upstreamFailure(503));
  const status = decimalValue(getHeaderBytes(MapType.HttpCallResponseHeaders, ":status"));
  const body = bodySize > 0 ? getBuffer(BufferType.HttpCallResponseBody, 0, bodySize) : null;
  if (status != 200 || body === null) {
    return refusedAnswer(injectorRejection(status > 0 ? <u32>status : 502, body));
  }
  const header = decimalValue(getHeaderBytes(MapType.HttpCallResponseHeaders, HEADER_EXPIRES_AT));
  return new InjectorAnswer(null, Uint8Array.wrap(body), header > 0 ? header : expiresAtInBody(body));
}

/** The injector's answer names exactly this request's identity, service and region. */
export function isCredentialFor(body: Uint8Array, request: CredentialRequest): bool {
  const root = parseJson(String.UTF8.decodeUnsafe(body.dataStart, <usize>body.byteLength)).value;
  if (root === null) return false;
  return hasText(root, "spiffe_id", request.identity.spiffe.uri) && hasText(root, "service", request.service) &&
    hasText(root, "region", request.region);
}

function hasText(object: JsonValue, member: string, text: string): bool {
  const value = object.member(member);
  return value !== null && value.kind == JsonKind.String && value.text == text;
}

function expiresAtInBody(body: ArrayBuffer): i64 {
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null) return 0;
  const expiresAt = root.member("expires_at");
  if (expiresAt === null || !expiresAt.isInteger() || expiresAt.number <= 0) return 0;
  return <i64>expiresAt.number;
}

/**
 * The injector's own errors already speak the contract: their type and message are passed on,
 * re-encoded so nothing else in its body can reach the agent. Anything else (Envoy's own 503 when
 * the cluster is down, a 504 on timeout, a proxy's HTML page) is mapped onto the contract.
 */
function injectorRejection(status: u32, body: ArrayBuffer | null): Rejection {
  if (body !== null && status >= 400 && status <= 599) {
    const root = parseJson(String.UTF8.decode(body)).value;
    const error = root !== null ? root.member("error") : null;
    const type = error !== null ? error.member("type") : null;
    const message = error !== null ? error.member("message") : null;
    if (type !== null && message !== null && type.kind == JsonKind.String && message.kind == JsonKind.String) {
      const known = errorTypeNamed(type.text);
      if (known >= 0) return new Rejection(status, <ErrorType>known, message.text);
    }
  }
  return upstreamFailure(status);
}
