// What every cloud does with a token from an external OIDC issuer before it hands out anything:
// the issuer must be one registered with it; it fetches `{issuer}/.well-known/openid-configuration`
// (whose `issuer` must match exactly), then the JWKS at its `jwks_uri`, and checks the signature
// against those keys, then `aud`, `exp`, `nbf`. The loopback stand-ins for AWS STS, GCP STS and
// Entra ID share this and answer each failure in their own cloud's error format.
import { createLocalJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload } from "jose";

export interface TrustedIssuer {
  /** The issuer URL registered with the cloud (IAM OIDC provider, WIF provider, federated credential). */
  issuer: string;
  /**
   * Where the issuer's URLs are really served: maps https://oidc.hexr.cloud/... onto the injector's
   * discovery listener on loopback (a hosts-file entry, in effect). Called at verification time.
   */
  resolve(url: string): string;
  /** Epoch ms the cloud's clock shows (default Date.now). */
  now?: () => number;
}

export type FederationFailure = "malformed" | "issuer" | "keys_unavailable" | "signature" | "expired" | "not_yet_valid" | "audience" | "claims";

export class FederationError extends Error {
  constructor(readonly reason: FederationFailure, message: string) {
    super(message);
  }
}

/** Maps the issuer's origin onto `base()` (e.g. the injector's discovery URL, known once it listens). */
export function resolverFor(issuer: string, base: () => string): (url: string) => string {
  const origin = new URL(issuer).origin;
  return (url) => (url.startsWith(origin) ? base() + url.slice(origin.length) : url);
}

/** Verifies `token` as the cloud would; resolves to its claims or throws a FederationError. */
export async function verifyFederatedToken(token: string, trusted: TrustedIssuer, audiences: readonly string[], algorithms = ["RS256"]): Promise<JWTPayload> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch {
    throw new FederationError("malformed", "the token is not a JWT");
  }
  if (claims.iss !== trusted.issuer) throw new FederationError("issuer", `no identity provider is registered for issuer ${String(claims.iss)}`);

  const keys = await fetchKeys(trusted);
  try {
    const { payload } = await jwtVerify(token, keys, {
      issuer: trusted.issuer,
      audience: [...audiences],
      algorithms,
      requiredClaims: ["sub", "exp", "iat"],
      currentDate: new Date((trusted.now ?? Date.now)()),
    });
    return payload;
  } catch (error) {
    if (error instanceof errors.JWTExpired) throw new FederationError("expired", "the token has expired");
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === "aud") throw new FederationError("audience", `the token's audience ${JSON.stringify(claims.aud)} is not accepted`);
      if (error.claim === "nbf") throw new FederationError("not_yet_valid", "the token is not valid yet");
      throw new FederationError("claims", `the token's ${error.claim} claim is not accepted`);
    }
    if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JOSEAlgNotAllowed) {
      throw new FederationError("signature", "the token's signature does not verify against the issuer's keys");
    }
    throw new FederationError("malformed", "the token cannot be verified");
  }
}

async function fetchKeys(trusted: TrustedIssuer) {
  try {
    const configuration = await getJson(trusted.resolve(`${trusted.issuer}/.well-known/openid-configuration`));
    if (configuration.issuer !== trusted.issuer || typeof configuration.jwks_uri !== "string") throw new Error("discovery document does not match");
    return createLocalJWKSet(await getJson(trusted.resolve(configuration.jwks_uri)));
  } catch {
    throw new FederationError("keys_unavailable", "the issuer's keys could not be retrieved");
  }
}

async function getJson(url: string): Promise<any> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}
