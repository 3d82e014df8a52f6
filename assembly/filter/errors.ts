// The agent-facing error contract: {"error":{"type": T, "message": M}}. Messages are fixed texts
// of this filter or the injector's own contract errors: no request content and no other upstream
// content is ever echoed, so no credential can leak here.
import { ERROR_TYPE_NAMES } from "../contract";
import { message } from "../util/message";

/** In the contract's order (contract/contract.json, errors.types). */
export const enum ErrorType { BadRequest, AuthenticationError, CredentialError }

export function errorTypeName(type: ErrorType): string {
  return ERROR_TYPE_NAMES[<i32>type];
}

/** The type named `name` in the contract, or -1. */
export function errorTypeNamed(name: string): i32 {
  return ERROR_TYPE_NAMES.indexOf(name);
}

export class Rejection {
  constructor(public status: u32, public type: ErrorType, public message: string) {}

  body(): Uint8Array {
    const json = message("{\"error\":{\"type\":\"") + errorTypeName(this.type) + message("\",\"message\":\"") + escapeJson(this.message) + "\"}}";
    return Uint8Array.wrap(String.UTF8.encode(json));
  }
}

export function badRequest(message: string): Rejection {
  return new Rejection(400, ErrorType.BadRequest, message);
}

export function unauthenticated(message: string): Rejection {
  return new Rejection(401, ErrorType.AuthenticationError, message);
}

export function bodyTooLarge(): Rejection {
  return new Rejection(413, ErrorType.BadRequest, message("the request body is too large"));
}

export function credentialError(status: u32, message: string): Rejection {
  return new Rejection(status, ErrorType.CredentialError, message);
}

// The refusals several doors share, each written once (every message costs bytes in the module).

export function notJsonMediaType(): Rejection {
  return new Rejection(415, ErrorType.BadRequest, message("the request body must be application/json"));
}

export function invalidContentLength(): Rejection {
  return badRequest(message("invalid content-length"));
}

export function notJsonObject(): Rejection {
  return badRequest(message("the request body must be a JSON object"));
}

/** Two tokens, or one Envoy joined from two (credential-door.ts, hasSeveralTokens). */
export function severalTokens(): Rejection {
  return unauthenticated(message("send exactly one authorization header"));
}

export function svidExpired(): Rejection {
  return unauthenticated(message("the JWT-SVID has expired"));
}

export function identityRevoked(): Rejection {
  return credentialError(403, message("this identity has been revoked"));
}

export function serviceNotAllowed(): Rejection {
  return credentialError(403, message("the service is not in this agent's resources"));
}

/** `text` made safe inside a JSON string (control characters become spaces). */
export function escapeJson(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c < 0x20) out += " ";
    else out += String.fromCharCode(c);
  }
  return out;
}

/**
 * An injector or Envoy reply that does not speak the contract, mapped onto it: the status
 * tells the agent's SDK whether to raise AuthenticationError or CredentialError.
 */
export function upstreamFailure(status: u32): Rejection {
  if (status == 401) return unauthenticated(message("the credential injector did not accept the identity"));
  if (status == 403) return credentialError(403, message("the credential exchange was denied by policy"));
  if (status == 503) return credentialError(503, message("the credential injector is unavailable"));
  if (status == 504) return credentialError(504, message("the credential injector did not answer in time"));
  return credentialError(502, message("the credential exchange failed upstream"));
}
