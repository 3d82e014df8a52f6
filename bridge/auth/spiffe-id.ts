// SPIFFE IDs of any workload (a sidecar, the injector, an admin agent), strictly as the SPIFFE ID
// specification defines them, with the contract's character grammars: no port, query, fragment,
// empty or dot segment. Agent IDs inside credential keys are the contract's own (parseCredentialKey).
import { isPathSegment, isTrustDomain } from "../../contract/index.ts";

export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  readonly segments: readonly string[];
}

/** The SPIFFE ID specification's limit for a whole ID. */
const MAX_SPIFFE_ID_BYTES = 2048;
const SCHEME = "spiffe://";

/** The parsed ID, or undefined when `value` is not a valid SPIFFE ID. */
export function parseSpiffeId(value: string): SpiffeId | undefined {
  if (Buffer.byteLength(value) > MAX_SPIFFE_ID_BYTES || !value.startsWith(SCHEME)) return undefined;
  const [trustDomain, ...segments] = value.slice(SCHEME.length).split("/");
  if (!isTrustDomain(trustDomain) || !segments.every(isPathSegment)) return undefined;
  return { id: value, trustDomain, segments };
}
