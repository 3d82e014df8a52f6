// Which Valkey keys the bridge may touch: credential keys as the shared contract defines them
// (contract/contract.json: `cred:{spiffe-id}:{service}:{region}`), the exchange lock of a credential
// (`lock:{credential key}`, derived here and never taken from a client), and the prefixes that purge
// and revocation requests name.
import {
  type AgentSpiffeId,
  CONTRACT,
  CREDENTIAL_KEY_PREFIX,
  expandCharClass,
  KEY_MAX_BYTES,
  LOCK_KEY_PREFIX,
  parseCredentialKey,
} from "../contract/index.ts";
import { badRequest } from "./errors.ts";

const PURGE_PREFIX_START = CREDENTIAL_KEY_PREFIX + CONTRACT.grammar.agent_spiffe_id.scheme;
const PURGE_PREFIX = purgePrefixPattern();

export interface CredentialKeyPath {
  key: string;
  /** The agent the credential belongs to: whose tenant decides who may use the key. */
  identity: AgentSpiffeId;
}

/**
 * Decodes the key part of `/v1/cred/{key}` or `/v1/locks/{key}`: always a credential key. A `lock:`
 * key is refused here too, so a lock can never be read, overwritten or deleted as if it were a credential.
 */
export function parseCredentialKeyPath(encoded: string): CredentialKeyPath {
  let key: string;
  try {
    key = decodeURIComponent(encoded);
  } catch {
    throw badRequest("key is not valid percent-encoding");
  }
  if (key.startsWith(LOCK_KEY_PREFIX)) {
    throw badRequest("key must be a credential key, without lock:; a credential's lock is /v1/locks/{credential key}");
  }
  const parts = parseCredentialKey(key);
  if (!parts) {
    throw badRequest(
      `key must be cred:{spiffe-id}:{service}:{region} as contract/contract.json defines it, at most ${KEY_MAX_BYTES} bytes`,
    );
  }
  return { key, identity: parts.identity };
}

/** The `prefix` of a purge or revocation request: a plain string prefix of credential keys, never a glob. */
export function parsePurgePrefix(prefix: unknown): string {
  if (typeof prefix !== "string") throw badRequest('body must be a JSON object with a string "prefix"');
  // All allowed characters are ASCII, so the string length is the byte length.
  if (prefix.length > KEY_MAX_BYTES || !PURGE_PREFIX.test(prefix)) {
    throw badRequest(
      `prefix must start with ${PURGE_PREFIX_START}, use only the characters of a credential key and be at most ${KEY_MAX_BYTES} bytes`,
    );
  }
  return prefix;
}

/**
 * `cred:spiffe://` followed by any characters a credential key can hold, taken from the contract's
 * grammars so the two can never drift apart. A purge prefix becomes a SCAN MATCH pattern, so a contract
 * that ever allowed a glob metacharacter must stop the bridge rather than let a prefix act as a glob.
 */
function purgePrefixPattern(): RegExp {
  const { grammar, keys } = CONTRACT;
  const classes = [
    grammar.trust_domain.chars,
    grammar.path_segment.chars,
    grammar.service.name_first,
    grammar.service.name_rest,
    grammar.region.chars,
  ];
  const chars = new Set([
    ...classes.flatMap(expandCharClass),
    ...CONTRACT.providers.join(""),
    "/",
    keys.separator,
    grammar.service.separator,
  ]);
  const globs = [...chars].filter((c) => "*?[]\\".includes(c));
  if (globs.length > 0) throw new Error(`the contract lets credential keys contain glob characters: ${globs.join(" ")}`);
  const escaped = [...chars].map((c) => c.replace(/[\\\]^-]/g, "\\$&")).join("");
  return new RegExp(`^${PURGE_PREFIX_START.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}[${escaped}]*$`);
}
