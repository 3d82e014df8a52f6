// Purge and recording a revocation empty L2 for every sidecar, so they need more than a sidecar's
// certificate: the admin's own JWT-SVID, which the admin sent to its sidecar and the sidecar
// forwards as `authorization: Bearer <JWT-SVID>`. The bridge verifies it itself (signature against
// the JWT-SVID bundle, expiry, audience, issuer) and requires its `sub` to be a configured admin.
// A sidecar cannot mint one, so an attacker holding a sidecar's (or its own) certificate cannot
// purge or revoke; only a token of an admin identity can.
import { errors, jwtVerify } from "jose";
import { trustBundleFromFile } from "../../spiffe/trust-bundle.ts";
import { forbidden, unauthenticated, type HttpError } from "../errors.ts";
import type { AdminJwtConfig } from "./access-config.ts";

/** Algorithms the JWT-SVID specification allows; never "none" or an HMAC. */
const JWT_SVID_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"];
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

export interface AdminVerifier {
  /** The admin's SPIFFE ID; throws 401 without a valid JWT-SVID, 403 when its subject is no admin. */
  verify(authorization: string | undefined): Promise<string>;
}

export function createAdminVerifier(admins: readonly string[], jwt: AdminJwtConfig | null): AdminVerifier {
  if (!jwt || admins.length === 0) {
    return {
      verify: async (authorization) => {
        if (!authorization) throw unauthenticated("an admin's JWT-SVID is required in authorization: Bearer");
        throw forbidden("no admin is configured: nobody may purge or revoke");
      },
    };
  }
  const keys = trustBundleFromFile(jwt.jwks_file);
  const allowed = new Set(admins);
  return {
    async verify(authorization) {
      const token = BEARER.exec(authorization ?? "")?.[1];
      if (!token) throw unauthenticated("an admin's JWT-SVID is required in authorization: Bearer");
      let subject: string | undefined;
      try {
        const { payload } = await jwtVerify(token, keys, {
          audience: jwt.audience,
          issuer: jwt.issuer,
          algorithms: JWT_SVID_ALGORITHMS,
          clockTolerance: jwt.clock_tolerance_seconds,
          requiredClaims: ["sub", "aud", "exp"],
        });
        subject = payload.sub;
      } catch (error) {
        throw rejection(error);
      }
      if (subject === undefined || !allowed.has(subject)) throw forbidden("this identity may not purge or revoke");
      return subject;
    },
  };
}

/** Our own words for each failure; none echoes the token. */
function rejection(error: unknown): HttpError {
  if (error instanceof errors.JWTExpired) return unauthenticated("the JWT-SVID has expired");
  if (error instanceof errors.JWTClaimValidationFailed) return unauthenticated(`the JWT-SVID's "${error.claim}" claim is not accepted`);
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("the JWT-SVID's signature is not valid");
  if (error instanceof errors.JWKSNoMatchingKey) return unauthenticated("the JWT-SVID is signed by a key outside the trust bundle");
  if (error instanceof errors.JOSEAlgNotAllowed) return unauthenticated("the JWT-SVID's signing algorithm is not allowed");
  return unauthenticated("the JWT-SVID is malformed or cannot be verified");
}
