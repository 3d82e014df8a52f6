// L3: the call to the Credential Injector (over the injector cluster, mTLS in production) and the
// reading of its answer. Used by a request that missed every cache and by refresh-ahead.
import { upstreamFailure, ErrorType, Rejection } from "./errors";
import { FilterConfig } from "./config";
import { Identity, identitySourceName } from "./identity";
import { JsonKind, parseJson } from "./json";
import { Header } from "./proxy-wasm/host";
import { ExchangeRequest } from "./request";

/** What the injector needs to know: who asks (verified), for what, and the JWT-SVID it re-verifies. */
export class InjectorCall {
  constructor(public headers: Header[], public body: Uint8Array) {}
}

export function injectorCall(config: FilterConfig, identity: Identity, request: ExchangeRequest, authorization: ArrayBuffer | null): InjectorCall {
  const spiffe = identity.spiffe;
  const headers: Header[] = [
    new Header(":method", "POST"),
    new Header(":path", config.injectorPath),
    new Header(":authority", config.injector.authority),
    new Header("content-type", "application/json"),
    new Header("x-hexr-spiffe-id", spiffe.uri),
    new Header("x-hexr-tenant", spiffe.tenant),
    new Header("x-hexr-agent", spiffe.agent),
    new Header("x-hexr-role", spiffe.role),
    new Header("x-hexr-identity-source", identitySourceName(identity.source)),
    new Header("x-hexr-service", request.service),
    new Header("x-hexr-region", request.region),
  ];
  if (authorization !== null) headers.push(new Header("authorization", String.UTF8.decode(authorization)));
  // Both values are validated to [a-z0-9_-], so no escaping is needed.
  const json = "{\"service\":\"" + request.service + "\",\"region\":\"" + request.region + "\"}";
  return new InjectorCall(headers, Uint8Array.wrap(String.UTF8.encode(json)));
}

export function expiresAtInBody(body: ArrayBuffer): i64 {
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
export function injectorRejection(status: u32, body: ArrayBuffer | null): Rejection {
  if (body !== null && status >= 400 && status <= 599) {
    const root = parseJson(String.UTF8.decode(body)).value;
    const error = root !== null ? root.member("error") : null;
    const type = error !== null ? error.member("type") : null;
    const message = error !== null ? error.member("message") : null;
    if (type !== null && message !== null && type.kind == JsonKind.String && message.kind == JsonKind.String) {
      if (type.text == "BadRequest") return new Rejection(status, ErrorType.BadRequest, message.text);
      if (type.text == "AuthenticationError") return new Rejection(status, ErrorType.AuthenticationError, message.text);
      if (type.text == "CredentialError") return new Rejection(status, ErrorType.CredentialError, message.text);
    }
  }
  return upstreamFailure(status);
}
