// The SDK's errors. Every one carries the contract's error type, a message and (when the sidecar
// answered) the HTTP status; none ever carries a token or a credential: messages are fixed texts
// or the sidecar's contract message (which never holds one), passed through redact() all the
// same, and toString(), toJSON() and util.inspect show only type, status, message, service and region.
import { inspect } from "node:util";
import type { ErrorType } from "./grammar.ts";

/** The contract's error types, plus the SDK's own: a missing optional peer dependency or a bad option. */
export type HexrErrorType = ErrorType | "MissingDependency" | "ConfigurationError" | "ProviderError";

export interface HexrErrorDetails {
  type?: HexrErrorType;
  status?: number;
  service?: string;
  region?: string;
}

const SECRET_SHAPES: RegExp[] = [
  /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g, // a JWT (JWT-SVID, Entra or Google ID token)
  /\b(?:bearer|basic)\s+\S+/gi, // an Authorization value
  /\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g, // an AWS access key ID
  /\bya29\.[A-Za-z0-9._-]+/g, // a Google access token
  /[A-Za-z0-9+/=_-]{40,}/g, // anything long and random-looking (a secret key, a session token)
];

/** Replaces anything shaped like a token or a credential with [redacted]. */
export function redact(text: string): string {
  let out = text;
  for (const shape of SECRET_SHAPES) out = out.replace(shape, "[redacted]");
  return out;
}

export class HexrError extends Error {
  readonly type: HexrErrorType;
  /** The sidecar's HTTP status, or the contract's status for a check the SDK made itself. */
  readonly status: number | undefined;
  readonly service: string | undefined;
  readonly region: string | undefined;

  constructor(message: string, details: HexrErrorDetails = {}) {
    super(redact(message));
    this.name = new.target.name;
    this.type = details.type ?? "BadRequest";
    this.status = details.status;
    this.service = details.service;
    this.region = details.region;
  }

  override toString(): string {
    const status = this.status === undefined ? "" : ` ${this.status}`;
    return `${this.name} [${this.type}${status}]: ${this.message}`;
  }

  toJSON(): { name: string; type: HexrErrorType; status?: number; message: string; service?: string; region?: string } {
    return { name: this.name, type: this.type, status: this.status, message: this.message, service: this.service, region: this.region };
  }

  /** util.inspect / console.log: the same as toString() plus where it was thrown. */
  [inspect.custom](): string {
    const frames = (this.stack ?? "").split("\n").slice(1).join("\n");
    return frames ? `${this.toString()}\n${frames}` : this.toString();
  }
}

/** No identity (no JWT-SVID locally, an expired one) or the sidecar's 401. */
export class AuthenticationError extends HexrError {
  constructor(message: string, details: Omit<HexrErrorDetails, "type"> = {}) {
    super(message, { ...details, type: "AuthenticationError", status: details.status ?? 401 });
  }
}

/** Denied (403: the agent's resources or policy), throttled (429), the sidecar or beyond failing (5xx, transport). */
export class CredentialError extends HexrError {
  constructor(message: string, details: Omit<HexrErrorDetails, "type"> = {}) {
    super(message, { ...details, type: "CredentialError" });
  }
}

/** The vault refused this identity a secret (403): scoped to another role, a revoked identity, an untrusted caller. */
export class AccessDeniedError extends CredentialError {
  constructor(message: string, details: Omit<HexrErrorDetails, "type"> = {}) {
    super(message, { ...details, status: details.status ?? 403 });
  }
}

/**
 * No such secret, or no such version, in the caller's namespace (404). The contract types a 404
 * as BadRequest, so its `type` is "BadRequest", as for any other 404.
 */
export class SecretNotFoundError extends HexrError {
  constructor(message: string, details: Omit<HexrErrorDetails, "type"> = {}) {
    super(message, { ...details, type: "BadRequest", status: details.status ?? 404 });
  }
}

/** The contract error's type and message in an answer's body, when it is one. */
function contractError(body: string): { type: unknown; message: string | undefined } {
  let type: unknown;
  let message: unknown;
  try {
    const parsed = JSON.parse(body) as { error?: { type?: unknown; message?: unknown } };
    type = parsed?.error?.type;
    message = parsed?.error?.message;
  } catch {
    // not a contract error: mapped by status
  }
  return { type, message: typeof message === "string" ? message.replace(/[\u0000-\u001f\u007f]/g, " ") : undefined };
}

/** The error a sidecar answer maps to: its contract error if it sent one, else by status. */
export function errorFromAnswer(status: number, body: string, where: { service?: string; region?: string }): HexrError {
  const { type, message } = contractError(body);
  const text = message ?? `the sidecar answered ${status}`;
  const details = { status, ...where };
  if (type === "AuthenticationError" || status === 401) return new AuthenticationError(text, details);
  if (type === "CredentialError" || status === 403 || status === 429 || status >= 500) return new CredentialError(text, details);
  return new HexrError(text, { ...details, type: "BadRequest" });
}

const VAULT_MESSAGES: Record<number, string> = {
  400: "the vault refused the request",
  401: "the sidecar or the vault did not accept the identity",
  403: "access to the secret was denied",
  404: "no such secret",
  405: "the vault does not allow this method here",
  409: "the secret exists with another scope",
  413: "the value or the request is too large",
  415: "the vault accepts only application/json",
  503: "the vault is unavailable",
};

/**
 * The error an answer of the vault's routes maps to (docs/vault-api.md "Errors"): 403 is
 * AccessDeniedError, 404 SecretNotFoundError; every other status as errorFromAnswer() maps it.
 * The message is the contract error's (the vault never puts a value in one), else a fixed text.
 */
export function vaultErrorFromAnswer(status: number, body: string): HexrError {
  const { type, message } = contractError(body);
  const text = message ?? VAULT_MESSAGES[status] ?? `the vault answered ${status}`;
  if (status === 403) return new AccessDeniedError(text, { status });
  if (status === 404) return new SecretNotFoundError(text, { status });
  if (type === "AuthenticationError" || status === 401) return new AuthenticationError(text, { status });
  if (type === "CredentialError" || status === 429 || status >= 500) return new CredentialError(text, { status });
  return new HexrError(text, { status, type: "BadRequest" });
}
