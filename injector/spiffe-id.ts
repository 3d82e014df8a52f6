// SPIFFE IDs as the SPIFFE ID specification defines them, and the agent form Hexr gives each
// agent process: spiffe://{trust-domain}/agent/{tenant}/{agent-name}/{process-role}.

export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  readonly segments: readonly string[];
}

export interface AgentIdentity {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly tenant: string;
  readonly agent: string;
  readonly role: string;
}

const MAX_SPIFFE_ID_LENGTH = 2048;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Parses a SPIFFE ID strictly (no port, query, fragment, empty or dot segments); undefined if invalid. */
export function parseSpiffeId(value: string): SpiffeId | undefined {
  if (value.length > MAX_SPIFFE_ID_LENGTH || !value.startsWith("spiffe://")) return undefined;
  const [trustDomain, ...segments] = value.slice("spiffe://".length).split("/");
  if (!TRUST_DOMAIN.test(trustDomain)) return undefined;
  const validSegment = (segment: string) => PATH_SEGMENT.test(segment) && segment !== "." && segment !== "..";
  if (!segments.every(validSegment)) return undefined;
  return { id: value, trustDomain, segments };
}

/** Parses an agent process's SPIFFE ID; undefined for any other SPIFFE ID or an invalid string. */
export function parseAgentId(value: string): AgentIdentity | undefined {
  const parsed = parseSpiffeId(value);
  if (!parsed || parsed.segments.length !== 4 || parsed.segments[0] !== "agent") return undefined;
  const [, tenant, agent, role] = parsed.segments;
  return { spiffeId: value, trustDomain: parsed.trustDomain, tenant, agent, role };
}
