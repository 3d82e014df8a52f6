// The bridge's error vocabulary: every failure a client can see, with its HTTP status.
// Messages describe the input class that was wrong and never echo a key or a value.

export type ErrorType =
  | "BadRequest"
  | "Unauthenticated"
  | "Forbidden"
  | "NotFound"
  | "MethodNotAllowed"
  | "Conflict"
  | "PayloadTooLarge"
  | "ValkeyUnavailable"
  | "InternalError";

const STATUS: Record<ErrorType, number> = {
  BadRequest: 400,
  Unauthenticated: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  Conflict: 409,
  PayloadTooLarge: 413,
  ValkeyUnavailable: 503,
  InternalError: 500,
};

export class HttpError extends Error {
  readonly status: number;

  constructor(
    readonly type: ErrorType,
    message: string,
    /** Extra response headers, e.g. `allow` on a 405. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = STATUS[type];
  }

  toJson(): string {
    return JSON.stringify({ error: { type: this.type, message: this.message } });
  }
}

/** Valkey did not answer in time, refused the connection or the cluster is down: the caller gets 503. */
export class ValkeyUnavailableError extends HttpError {
  constructor(reason: string) {
    super("ValkeyUnavailable", `valkey unavailable: ${reason}`);
  }
}

export const badRequest = (message: string) => new HttpError("BadRequest", message);

/** No verified client certificate, or (admin routes) no valid JWT-SVID. */
export const unauthenticated = (message: string) => new HttpError("Unauthenticated", message);

/** Authenticated, but this caller may not do this. */
export const forbidden = (message: string) => new HttpError("Forbidden", message);

export const methodNotAllowed = (allow: string) =>
  new HttpError("MethodNotAllowed", `method not allowed; use ${allow}`, { allow });
