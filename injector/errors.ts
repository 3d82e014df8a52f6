// The JSON error contract: {"error":{"type": T, "message": M}} with the status that tells the
// filter (and the agent's SDK) what happened. Messages are written here or from a provider's error
// code, never copied from a request, so they can carry neither a token nor a credential.
import { ContractError } from "../service/contract-error.ts";

/** What happened, for the one log line per exchange. */
export type Outcome =
  | "bad_request"
  | "unauthenticated"
  | "trust_bundle_unavailable"
  | "signing_key_unavailable"
  | "denied"
  | "revoked"
  | "revocations_unavailable"
  | "policy_unavailable"
  | "not_configured"
  | "exchange_rejected"
  | "exchange_unavailable"
  | "exchange_timeout"
  | "key_missing"
  | "key_unusable"
  | "internal_error";

export class ExchangeError extends ContractError<Outcome> {
  override readonly name = "ExchangeError";
}

export const badRequest = (message: string, status = 400, headers: Record<string, string> = {}) =>
  new ExchangeError(status, "BadRequest", "bad_request", message, headers);

export const unauthenticated = (message: string) =>
  new ExchangeError(401, "AuthenticationError", "unauthenticated", message);

export const trustBundleUnavailable = () =>
  new ExchangeError(503, "CredentialError", "trust_bundle_unavailable", "the JWT-SVID trust bundle is unavailable");

/** No OIDC signing key may sign now: the injector cannot mint the token a cloud would accept. */
export const signingKeyUnavailable = () =>
  new ExchangeError(503, "CredentialError", "signing_key_unavailable", "the injector's OIDC signing key is unavailable");

export const denied = (message: string) => new ExchangeError(403, "CredentialError", "denied", message);

/** The identity (or this key of it) is under a prefix revoked within revocation.deny_seconds. */
export const revoked = () => new ExchangeError(403, "CredentialError", "revoked", "this identity has been revoked");

/** The revocation log has not been read for revocation.max_log_staleness_ms: nothing is exchanged until it is. */
export const revocationsUnavailable = () =>
  new ExchangeError(503, "CredentialError", "revocations_unavailable", "the revocation list is not current; exchanges resume once it can be read");

export const policyUnavailable = (message: string) =>
  new ExchangeError(503, "CredentialError", "policy_unavailable", message);

export const notConfigured = (message: string) => new ExchangeError(503, "CredentialError", "not_configured", message);

const ERROR_CODE = /^[A-Za-z0-9 _.:-]{1,64}$/;

/** The cloud's token service answered with an error: its error code (if it looks like one), never its reply. */
export const exchangeRejected = (service: string, code: string) =>
  new ExchangeError(502, "CredentialError", "exchange_rejected", `${service} rejected the exchange: ${ERROR_CODE.test(code) ? code : "UnknownError"}`);

export const exchangeUnavailable = (service: string) =>
  new ExchangeError(503, "CredentialError", "exchange_unavailable", `${service} is unreachable`);

export const exchangeTimedOut = (service: string, timeoutMs: number) =>
  new ExchangeError(504, "CredentialError", "exchange_timeout", `${service} did not answer within ${timeoutMs} ms`);

/**
 * An llm_* key the vault does not hold in the identity's agent-level scope: no such secret in the
 * agent's namespace, or only a role-level one. The secret is named; its value never is.
 */
export const keyNotInVault = (secret: string) =>
  new ExchangeError(403, "CredentialError", "key_missing", `the secret ${secret} is not in the vault for this identity`);

/** The vault answered, but what it holds is no API key the sidecar could put in a header. */
export const keyUnusable = (secret: string) =>
  new ExchangeError(502, "CredentialError", "key_unusable", `the secret ${secret} in the vault is not a usable API key`);

/** The vault could not be asked (unreachable), or would not answer the injector (401, 5xx): `reason` is ours, never its body. */
export const vaultUnavailable = (reason: string) =>
  new ExchangeError(503, "CredentialError", "exchange_unavailable", `Hexr Vault could not serve the key: ${reason}`);

/** A failure nobody foresaw: named in the log, never described to the client. */
export const internalError = () => new ExchangeError(502, "CredentialError", "internal_error", "the credential exchange failed");
