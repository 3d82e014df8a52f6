// SPIFFE IDs of any workload, as the SPIFFE ID specification defines them: the mTLS caller's
// certificate (a sidecar, a gateway) and the configured caller rules are not agent IDs. Agent IDs
// themselves are the contract's (parseAgentSpiffeId); both use the contract's character grammars.
import { isPathSegment, isTrustDomain } from "../contract/index.ts";

export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  readonly segments: readonly string[];
}

/** The SPIFFE ID specification's limit for a whole ID. */
const MAX_SPIFFE_ID_BYTES = 2048;
const SCHEME = "spiffe://";

/** Parses a SPIFFE ID strictly (no port, query, fragment, empty or dot segments); undefined if invalid. */
export function parseSpiffeId(value: string): SpiffeId | undefined {
  if (Buffer.byteLength(value) > MAX_SPIFFE_ID_BYTES || !value.startsWith(SCHEME)) return undefined;
  const [trustDomain, ...segments] = value.slice(SCHEME.length).split("/");
  if (!isTrustDomain(trustDomain) || !segments.every(isPathSegment)) return undefined;
  return { id: value, trustDomain, segments };
}
