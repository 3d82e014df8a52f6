// Verifies an agent's JWT-SVID again, here, even though Envoy's jwt_authn already did: signature
// against the trust bundle, expiry, audience (and issuer when configured), and a `sub` that is an
// agent SPIFFE ID in a trusted trust domain.
import { errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { parseAgentSpiffeId, type AgentSpiffeId } from "../../contract/index.ts";
import type { InjectorConfig } from "../config.ts";
import { ExchangeError, trustBundleUnavailable, unauthenticated } from "../errors.ts";
import { TrustBundleUnavailable, trustBundleFromFile, trustBundleFromUrl } from "../../spiffe/trust-bundle.ts";

const JWKS_FETCH_TIMEOUT_MS = 2000;

export class JwtSvidVerifier {
  private readonly keys: JWTVerifyGetKey;

  constructor(
    private readonly jwt: InjectorConfig["jwt"],
    private readonly trustDomains: readonly string[],
  ) {
    this.keys = jwt.jwks_file ? trustBundleFromFile(jwt.jwks_file) : trustBundleFromUrl(jwt.jwks_url!, JWKS_FETCH_TIMEOUT_MS, jwt.jwks_refresh_seconds * 1000);
  }

  /** The verified agent identity from `sub`; throws a 401 ExchangeError otherwise. */
  async verify(token: string): Promise<AgentSpiffeId> {
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        audience: this.jwt.audience,
        issuer: this.jwt.issuer ?? undefined,
        algorithms: this.jwt.algorithms,
        clockTolerance: this.jwt.clock_tolerance_seconds,
        requiredClaims: ["sub", "aud", "exp"],
        // A token older than the longest lifetime the trust domain issues is refused (iat is then
        // required): what makes revocation.deny_seconds a bound on every token issued before a revocation.
        ...(this.jwt.max_token_age_seconds === null ? {} : { maxTokenAge: this.jwt.max_token_age_seconds }),
      });
      subject = payload.sub;
    } catch (error) {
      throw rejection(error);
    }
    const identity = subject === undefined ? undefined : parseAgentSpiffeId(subject);
    if (!identity) throw unauthenticated("JWT-SVID subject is not an agent SPIFFE ID");
    if (!this.trustDomains.includes(identity.trustDomain)) {
      throw unauthenticated(`JWT-SVID trust domain ${identity.trustDomain} is not trusted`);
    }
    return identity;
  }
}

/** Our own words for each failure: jose's messages are safe, but ours say what the operator should check. */
function rejection(error: unknown): ExchangeError {
  if (error instanceof errors.JWTExpired) {
    return unauthenticated(error.claim === "iat" ? "JWT-SVID is older than the accepted token age" : "JWT-SVID has expired");
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claims: Record<string, string> = { aud: "audience", iss: "issuer", nbf: "not-before time", iat: "issued-at time" };
    return unauthenticated(`JWT-SVID ${claims[error.claim] ?? `"${error.claim}" claim`} is not accepted`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("JWT-SVID signature is not valid");
  if (error instanceof errors.JWKSNoMatchingKey) return unauthenticated("JWT-SVID is signed by a key outside the trust bundle");
  if (error instanceof errors.JOSEAlgNotAllowed) return unauthenticated("JWT-SVID signing algorithm is not allowed");
  // A server-side failure, answered 503 and never an allow.
  if (error instanceof TrustBundleUnavailable) return trustBundleUnavailable();
  return unauthenticated("JWT-SVID is malformed or cannot be verified");
}
