// Which Valkey keys the bridge may touch: credential keys in the seeds' format
// (`cred:{spiffe-id}:{service}:{region}`), their `lock:` twins for exchange locks, and the prefixes
// that purge and revocation requests name.
import { badRequest } from "./errors.ts";

export const MAX_KEY_BYTES = 512;
export const LOCK_PREFIX = "lock:";
const PURGE_PREFIX_START = "cred:spiffe://";

// Every part is validated, so no part can contain ':' and the pattern cannot backtrack.
const CREDENTIAL_KEY = /^cred:spiffe:\/\/[a-z0-9._-]+\/[A-Za-z0-9._/-]+:[a-z0-9_]+:[a-z0-9-]{1,32}$/;
// Only characters a credential key may contain: none of them is a SCAN glob metacharacter (* ? [ ] \).
const PURGE_PREFIX = /^cred:spiffe:\/\/[A-Za-z0-9._/:-]*$/;

export function isCredentialKey(key: string): boolean {
  // All allowed characters are ASCII, so the string length is the byte length.
  return key.length <= MAX_KEY_BYTES && CREDENTIAL_KEY.test(key);
}

/** Decodes the key part of `/v1/cred/{key}` and checks it; `lock:` keys only when `allowLock`. */
export function parseKey(encoded: string, allowLock: boolean): string {
  let key: string;
  try {
    key = decodeURIComponent(encoded);
  } catch {
    throw badRequest("key is not valid percent-encoding");
  }
  const credentialPart = allowLock && key.startsWith(LOCK_PREFIX) ? key.slice(LOCK_PREFIX.length) : key;
  if (!isCredentialKey(credentialPart)) {
    throw badRequest(
      `key must match cred:spiffe://{trust-domain}/{path}:{service}:{region} and be at most ${MAX_KEY_BYTES} bytes` +
        (allowLock ? " (optionally prefixed with lock:)" : ""),
    );
  }
  return key;
}

/** The `prefix` of a purge or revocation request: a plain string prefix of credential keys, never a glob. */
export function parsePurgePrefix(prefix: unknown): string {
  if (typeof prefix !== "string") throw badRequest('body must be a JSON object with a string "prefix"');
  if (prefix.length > MAX_KEY_BYTES || !PURGE_PREFIX.test(prefix)) {
    throw badRequest(
      `prefix must start with ${PURGE_PREFIX_START}, use only the characters of a credential key and be at most ${MAX_KEY_BYTES} bytes`,
    );
  }
  return prefix;
}
