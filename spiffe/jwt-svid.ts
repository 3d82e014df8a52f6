// Verifies an agent's JWT-SVID, for every service that checks one again after Envoy's jwt_authn
// (the injector, the vault): signature against the trust bundle (spiffe/trust-bundle.ts: a file
// SPIRE rewrites, or its OIDC discovery provider), expiry, audience, issuer when configured, and
// a `sub` that is an agent SPIFFE ID of a trusted trust domain. Each service says how the two
// failures read in its own error bodies (JwtSvidFailures): the caller's token (401), and keys that
// could not be fetched (503, never an allow).
import { errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { parseAgentSpiffeId, type AgentSpiffeId } from "../contract/index.ts";
import { TrustBundleUnavailable, trustBundleFromFile, trustBundleFromUrl } from "./trust-bundle.ts";

const JWKS_FETCH_TIMEOUT_MS = 2000;

export interface JwtSvidSettings {
  jwks_file: string | null;
  jwks_url: string | null;
  /** With jwks_url: the key set is fetched again once it is this old, so a key removed from the bundle stops verifying. */
  jwks_refresh_seconds: number;
  audience: string[];
  issuer: string | null;
  algorithms: string[];
  clock_tolerance_seconds: number;
  /** A token older than this (now − iat) is refused; iat is then required. Absent or null: not checked. */
  max_token_age_seconds?: number | null;
}

/** The service's own errors for the two failures; `rejected`'s reason never echoes the token. */
export interface JwtSvidFailures {
  rejected(reason: string): Error;
  unavailable(): Error;
}

class JwtSvidRejected extends Error {}

export class JwtSvidVerifier {
  private readonly keys: JWTVerifyGetKey;

  constructor(
    private readonly settings: JwtSvidSettings,
    private readonly trustDomains: readonly string[],
    private readonly failures: JwtSvidFailures,
  ) {
    this.keys = settings.jwks_file
      ? trustBundleFromFile(settings.jwks_file)
      : trustBundleFromUrl(settings.jwks_url!, JWKS_FETCH_TIMEOUT_MS, settings.jwks_refresh_seconds * 1000);
  }

  /** The verified agent identity from `sub`; throws the service's `rejected` or `unavailable` error otherwise. */
  async verify(token: string): Promise<AgentSpiffeId> {
    try {
      return await this.verifyOrThrow(token);
    } catch (error) {
      if (error instanceof JwtSvidRejected) throw this.failures.rejected(error.message);
      if (error instanceof TrustBundleUnavailable) throw this.failures.unavailable();
      throw error;
    }
  }

  private async verifyOrThrow(token: string): Promise<AgentSpiffeId> {
    const settings = this.settings;
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        audience: settings.audience,
        issuer: settings.issuer ?? undefined,
        algorithms: settings.algorithms,
        clockTolerance: settings.clock_tolerance_seconds,
        requiredClaims: ["sub", "aud", "exp"],
        // A token older than the longest lifetime the trust domain issues is refused: what makes a
        // revocation's deny window a bound on every token issued before it.
        ...(settings.max_token_age_seconds ? { maxTokenAge: settings.max_token_age_seconds } : {}),
      });
      subject = payload.sub;
    } catch (error) {
      throw rejection(error);
    }
    const identity = subject === undefined ? undefined : parseAgentSpiffeId(subject);
    if (!identity) throw new JwtSvidRejected("JWT-SVID subject is not an agent SPIFFE ID");
    if (!this.trustDomains.includes(identity.trustDomain)) throw new JwtSvidRejected(`JWT-SVID trust domain ${identity.trustDomain} is not trusted`);
    return identity;
  }
}

/** Our own words for each failure: jose's messages are safe, but ours say what the operator should check. */
function rejection(error: unknown): Error {
  if (error instanceof TrustBundleUnavailable) return error;
  if (error instanceof errors.JWTExpired) {
    return new JwtSvidRejected(error.claim === "iat" ? "JWT-SVID is older than the accepted token age" : "JWT-SVID has expired");
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claims: Record<string, string> = { aud: "audience", iss: "issuer", nbf: "not-before time", iat: "issued-at time" };
    return new JwtSvidRejected(`JWT-SVID ${claims[error.claim] ?? `"${error.claim}" claim`} is not accepted`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new JwtSvidRejected("JWT-SVID signature is not valid");
  if (error instanceof errors.JWKSNoMatchingKey) return new JwtSvidRejected("JWT-SVID is signed by a key outside the trust bundle");
  if (error instanceof errors.JOSEAlgNotAllowed) return new JwtSvidRejected("JWT-SVID signing algorithm is not allowed");
  return new JwtSvidRejected("JWT-SVID is malformed or cannot be verified");
}
