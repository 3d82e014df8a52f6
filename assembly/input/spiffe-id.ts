// The agent SPIFFE ID of the contract: spiffe://{trust-domain}/agent/{tenant}/{agent}/{role}.
import {
  AGENT_KIND, AGENT_SPIFFE_ID_MAX, PATH_SEGMENT_FORBIDDEN, PATH_SEGMENT_MAX, SPIFFE_SCHEME, TRUST_DOMAIN_MAX,
} from "../contract";
import { allInClass, CharClass } from "../util/ascii";

export class SpiffeId {
  /** The URI as UTF-8, for the answers that name it (encoded once per identity, not per answer). */
  readonly uriBytes: ArrayBuffer;

  constructor(
    public uri: string,
    public trustDomain: string,
    public tenant: string,
    public agent: string,
    public role: string,
  ) {
    this.uriBytes = String.UTF8.encode(uri);
  }
}

/** A tenant, agent or role name. */
export function isPathSegment(segment: string): bool {
  return isSegment(segment, 0, segment.length);
}

function isSegment(uri: string, from: i32, to: i32): bool {
  const length = to - from;
  if (length < 1 || length > PATH_SEGMENT_MAX || !allInClass(uri, from, to, CharClass.PathSegment)) return false;
  return length > 2 || !PATH_SEGMENT_FORBIDDEN.includes(uri.substring(from, to));
}

/** Parses an agent SPIFFE ID strictly; anything else (including other workload shapes) is null. */
export function parseSpiffeId(uri: string): SpiffeId | null {
  if (uri.length > AGENT_SPIFFE_ID_MAX || !uri.startsWith(SPIFFE_SCHEME)) return null;
  const domainStart = SPIFFE_SCHEME.length;
  const domainEnd = uri.indexOf("/", domainStart);
  if (domainEnd <= domainStart || domainEnd - domainStart > TRUST_DOMAIN_MAX) return null;
  if (!allInClass(uri, domainStart, domainEnd, CharClass.TrustDomain)) return null;
  const kindEnd = uri.indexOf("/", domainEnd + 1);
  if (kindEnd - domainEnd - 1 != AGENT_KIND.length || uri.substring(domainEnd + 1, kindEnd) != AGENT_KIND) return null;
  const tenantEnd = uri.indexOf("/", kindEnd + 1);
  const agentEnd = tenantEnd < 0 ? -1 : uri.indexOf("/", tenantEnd + 1);
  if (agentEnd < 0 || uri.indexOf("/", agentEnd + 1) >= 0) return null;
  if (!isSegment(uri, kindEnd + 1, tenantEnd) || !isSegment(uri, tenantEnd + 1, agentEnd) ||
    !isSegment(uri, agentEnd + 1, uri.length)) return null;
  return new SpiffeId(uri, uri.substring(domainStart, domainEnd), uri.substring(kindEnd + 1, tenantEnd),
    uri.substring(tenantEnd + 1, agentEnd), uri.substring(agentEnd + 1));
}
