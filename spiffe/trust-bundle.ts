// The JWKS that JWT-SVIDs are checked against, for every service that verifies them (the injector,
// the bridge's admin authentication): a file (the dev JWKS, or a SPIFFE trust bundle that SPIRE
// writes) or a URL (SPIRE's OIDC discovery provider, `/keys`).
import { readFileSync } from "node:fs";
import { createLocalJWKSet, createRemoteJWKSet, errors, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";

/** A rotated key shows up as an unknown kid; the file is re-read at most this often. */
const FILE_RELOAD_COOLDOWN_MS = 10_000;

export function trustBundleFromFile(file: string, reloadCooldownMs = FILE_RELOAD_COOLDOWN_MS): JWTVerifyGetKey {
  let keySet = createLocalJWKSet(readJwks(file));
  let loadedAt = Date.now();
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - loadedAt < reloadCooldownMs) throw error;
      keySet = createLocalJWKSet(readJwks(file));
      loadedAt = Date.now();
      return keySet(header, token);
    }
  };
}

/** The key set could not be fetched: the injector's problem, not the caller's. */
export class TrustBundleUnavailable extends Error {}

export function trustBundleFromUrl(url: string, timeoutMs: number): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), { timeoutDuration: timeoutMs });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      const aboutTheToken = error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys || error instanceof errors.JOSEAlgNotAllowed;
      throw aboutTheToken ? error : new TrustBundleUnavailable(`JWKS at ${url} is unavailable`);
    }
  };
}

/**
 * Accepts a plain JWKS and a SPIFFE bundle: the latter marks JWT signing keys `"use": "jwt-svid"`
 * (which jose would skip) and also carries X.509 roots (`"use": "x509-svid"`), which are dropped.
 */
function readJwks(file: string): JSONWebKeySet {
  const parsed = JSON.parse(readFileSync(file, "utf8")) as { keys?: unknown };
  if (!Array.isArray(parsed.keys)) throw new Error(`${file} is not a JWKS: no "keys" list`);
  const keys = (parsed.keys as JWK[])
    .filter((key) => key.use === undefined || key.use === "sig" || key.use === "jwt-svid")
    .map((key) => (key.use === "jwt-svid" ? { ...key, use: "sig" } : key));
  return { keys };
}
