// Every key the filter reads or writes, in one place. Credential keys and lock keys are the
// contract's (the bridge and Valkey see them); the rest live only in this Envoy's shared data.
import { CREDENTIAL_KEY_PREFIX, KEY_SEPARATOR, SPIFFE_SCHEME } from "../contract";

/** cred:{spiffe-id}:{service}:{region}: one credential, in L1 and in L2. */
export function credentialKey(spiffeId: string, service: string, region: string): string {
  return CREDENTIAL_KEY_PREFIX + spiffeId + KEY_SEPARATOR + service + KEY_SEPARATOR + region;
}

/** inflight:{credential key}: the claim on the key's exchange in this Envoy (resolve/claims.ts). */
export function claimKey(credential: string): string {
  return "inflight:" + credential;
}

/** The key under which claims are taken (shared data cannot create a key atomically). */
export const CLAIMS_LOCK_KEY = "inflight:lock";

// Revocation targets are key prefixes: every credential of one identity, of one tenant, or all.

export function identityPrefix(spiffeId: string): string {
  return CREDENTIAL_KEY_PREFIX + spiffeId + KEY_SEPARATOR;
}

export function tenantPrefix(trustDomain: string, tenant: string): string {
  return CREDENTIAL_KEY_PREFIX + SPIFFE_SCHEME + trustDomain + "/agent/" + tenant + "/";
}

export const ALL_CREDENTIALS_PREFIX = CREDENTIAL_KEY_PREFIX + SPIFFE_SCHEME;
