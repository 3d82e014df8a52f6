// The vault's answers when something is wrong: the contract's error body,
// {"error":{"type": T, "message": M}}, with the status docs/vault-api.md gives each case. Messages
// are written here, from names and numbers the vault itself checked; none ever carries a secret's
// value, a token or anything else copied from a request body.
import { ContractError } from "../service/contract-error.ts";

/** What happened, for the log line and the tests; never shown to the client. */
export type Outcome =
  | "bad_request"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "too_large"
  | "unsupported_media_type"
  | "unauthenticated"
  | "untrusted_caller"
  | "denied"
  | "namespace_full"
  | "trust_bundle_unavailable"
  | "store_unavailable"
  | "kek_unavailable"
  | "integrity_failure"
  | "internal_error";

export class VaultError extends ContractError<Outcome> {
  override readonly name = "VaultError";
}

export const badRequest = (message: string) => new VaultError(400, "BadRequest", "bad_request", message);

/** No such secret or version in the caller's namespace: the same answer whether it exists elsewhere or nowhere. */
export const notFound = (message: string) => new VaultError(404, "BadRequest", "not_found", message);

export const noSuchEndpoint = () => new VaultError(404, "BadRequest", "not_found", "no such endpoint (docs/vault-api.md)");

export const methodNotAllowed = (allow: readonly string[]) =>
  new VaultError(405, "BadRequest", "method_not_allowed", `method not allowed here; use ${allow.join(", ")}`, { allow: allow.join(", ") });

export const scopeConflict = (name: string, scope: string) =>
  new VaultError(409, "BadRequest", "conflict", `secret ${name} exists with scope ${scope}: a put may not change it (delete it first)`);

export const tooLarge = (message: string) => new VaultError(413, "BadRequest", "too_large", message);

export const unsupportedMediaType = () =>
  new VaultError(415, "BadRequest", "unsupported_media_type", "the body must be JSON (content-type: application/json)");

export const unauthenticated = (message: string) => new VaultError(401, "AuthenticationError", "unauthenticated", message);

/** An mTLS caller no caller rule lists, or one asserting an identity outside its tenants. */
export const untrustedCaller = (message: string) => new VaultError(403, "CredentialError", "untrusted_caller", message);

/** Outside the secret's scope (or the admins' list). */
export const denied = (message: string) => new VaultError(403, "CredentialError", "denied", message);

export const namespaceFull = (limit: number) =>
  new VaultError(403, "CredentialError", "namespace_full", `this agent already holds the maximum of ${limit} secrets: delete one first`);

export const trustBundleUnavailable = () =>
  new VaultError(503, "CredentialError", "trust_bundle_unavailable", "the JWT-SVID trust bundle is unavailable");

export const storeUnavailable = () =>
  new VaultError(503, "CredentialError", "store_unavailable", "the vault's storage is unavailable; nothing was stored");

export const kekUnavailable = () =>
  new VaultError(503, "CredentialError", "kek_unavailable", "the vault's key-encryption key is unavailable; nothing was stored");

/** A stored value (or its wrapped key) failed authentication: tampered with, or moved from another row. */
export const integrityFailure = (name: string) =>
  new VaultError(503, "CredentialError", "integrity_failure", `secret ${name} cannot be decrypted: its stored ciphertext failed the integrity check`);

/** A failure nobody foresaw: named in the log, never described to the client. */
export const internalError = () => new VaultError(502, "CredentialError", "internal_error", "the vault failed to answer; see its log");

/** The store could not do its part (connection lost, disk full, timeout): always a 503, never a partial write. */
export class StoreUnavailable extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`store unavailable: ${reason}`, options);
    this.name = "StoreUnavailable";
  }
}

/** The key-encryption key could not be used (KMS unreachable, throttled): a 503. */
export class KekUnavailable extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`key-encryption key unavailable: ${reason}`, options);
    this.name = "KekUnavailable";
  }
}

/** Authentication of a wrapped key or a value failed: the stored bytes are not what was written for this row. */
export class IntegrityError extends Error {
  constructor(reason: string) {
    super(`integrity check failed: ${reason}`);
    this.name = "IntegrityError";
  }
}
