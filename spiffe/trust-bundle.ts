// The JWKS that JWT-SVIDs are checked against, for every service that verifies them (the injector,
// the bridge's admin authentication): a file (the dev JWKS, or a SPIFFE trust bundle that SPIRE
// writes) or a URL (SPIRE's OIDC discovery provider, `/keys`).
import { readFileSync, statSync } from "node:fs";
import { createLocalJWKSet, createRemoteJWKSet, errors, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";

/** A rotated key shows up as an unknown kid, a removed one only in the file: it is looked at this often. */
const FILE_CHECK_INTERVAL_MS = 1_000;

/**
 * Keys from a file that SPIRE (or hexr-svid-files) rewrites as keys rotate: read again when its
 * modification time changes, so a key taken out of the bundle stops verifying within a second.
 */
export function trustBundleFromFile(file: string, checkIntervalMs = FILE_CHECK_INTERVAL_MS): JWTVerifyGetKey {
  let modifiedAt = statSync(file).mtimeMs;
  let keySet = createLocalJWKSet(readJwks(file));
  let checkedAt = Date.now();
  return async (header, token) => {
    if (Date.now() - checkedAt >= checkIntervalMs) {
      checkedAt = Date.now();
      const now = modifiedAtOf(file);
      if (now !== modifiedAt && now !== undefined) {
        // A half-written or broken file keeps the keys we have until a good one appears.
        try {
          keySet = createLocalJWKSet(readJwks(file));
          modifiedAt = now;
        } catch {}
      }
    }
    return keySet(header, token);
  };
}

function modifiedAtOf(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The key set could not be fetched: the injector's problem, not the caller's. */
export class TrustBundleUnavailable extends Error {}

/**
 * Keys from a URL, fetched again once they are `maxAgeMs` old (a key SPIRE removed stops
 * verifying within that) and on an unknown kid (a new key is trusted at once).
 */
export function trustBundleFromUrl(url: string, timeoutMs: number, maxAgeMs: number): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), { timeoutDuration: timeoutMs, cacheMaxAge: maxAgeMs, cooldownDuration: Math.min(maxAgeMs, 30_000) });
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
