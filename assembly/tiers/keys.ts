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

/** count:cred:{spiffe-id}: how many shared-data keys this Envoy has created for one identity (resolve/caps.ts). */
export function identityKeyCountKey(credential: string): string {
  // The credential key ends ":{service}:{region}": what precedes them, with its ':', is the identity's prefix.
  const regionStart = credential.lastIndexOf(KEY_SEPARATOR);
  const serviceStart = credential.lastIndexOf(KEY_SEPARATOR, regionStart - 1);
  return "count:" + credential.substring(0, serviceStart + 1);
}

/** The revocations this Envoy knows (tiers/revocations.ts). */
export const REVOCATIONS_KEY = "revocations";

/** How many shared-data keys this Envoy has created for credentials, in all. */
export const ALL_KEYS_COUNT_KEY = "count:*";
