// Who is calling: a SPIFFE ID that Envoy verified (mTLS peer certificate or jwt_authn), or the
// configured static one. Nothing a client can set in a header is ever consulted.
import { getProperty, propertyPath } from "./proxy-wasm/host";
import { FilterConfig } from "./config";

export const enum IdentitySource { Mtls, Jwt, Static }

export function identitySourceName(source: IdentitySource): string {
  if (source == IdentitySource.Mtls) return "mtls";
  if (source == IdentitySource.Jwt) return "jwt";
  return "static";
}

/** spiffe://{trust-domain}/agent/{tenant}/{agent-name}/{process-role} */
export class SpiffeId {
  constructor(
    public uri: string,
    public trustDomain: string,
    public tenant: string,
    public agent: string,
    public role: string,
  ) {}
}

export class Identity {
  constructor(public spiffe: SpiffeId, public source: IdentitySource) {}
}

const SCHEME = "spiffe://";
const MAX_SPIFFE_ID_LENGTH = 512;

function isTrustDomainChar(c: i32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2e || c == 0x2d || c == 0x5f;
}

/** A tenant, agent or role: [A-Za-z0-9._-]+, never "." or "..". */
export function isPathSegment(segment: string): bool {
  if (segment.length == 0 || segment == "." || segment == "..") return false;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
      c == 0x2e || c == 0x2d || c == 0x5f;
    if (!ok) return false;
  }
  return true;
}

/** Parses an agent SPIFFE ID strictly; anything else (including other workload shapes) is null. */
export function parseSpiffeId(uri: string): SpiffeId | null {
  if (uri.length > MAX_SPIFFE_ID_LENGTH || !uri.startsWith(SCHEME)) return null;
  const domainEnd = uri.indexOf("/", SCHEME.length);
  if (domainEnd <= SCHEME.length) return null;
  for (let i = SCHEME.length; i < domainEnd; i++) {
    if (!isTrustDomainChar(uri.charCodeAt(i))) return null;
  }
  const kindEnd = uri.indexOf("/", domainEnd + 1);
  if (kindEnd < 0 || uri.substring(domainEnd + 1, kindEnd) != "agent") return null;
  const tenantEnd = uri.indexOf("/", kindEnd + 1);
  const agentEnd = tenantEnd < 0 ? -1 : uri.indexOf("/", tenantEnd + 1);
  if (agentEnd < 0 || uri.indexOf("/", agentEnd + 1) >= 0) return null;
  const tenant = uri.substring(kindEnd + 1, tenantEnd);
  const agent = uri.substring(tenantEnd + 1, agentEnd);
  const role = uri.substring(agentEnd + 1);
  if (!isPathSegment(tenant) || !isPathSegment(agent) || !isPathSegment(role)) return null;
  return new SpiffeId(uri, uri.substring(SCHEME.length, domainEnd), tenant, agent, role);
}

export class IdentityResult {
  constructor(public identity: Identity | null, public reason: string) {}
}

/** The URI SAN of the peer certificate Envoy validated (Envoy's connection attributes). */
const PEER_URI_SAN = propertyPath(["connection", "uri_san_peer_certificate"]);

/** Where jwt_authn's verified `sub` is: its dynamic metadata, which no client can write. */
export function jwtSubjectPath(namespace: string, payloadKey: string): ArrayBuffer {
  return propertyPath(["metadata", "filter_metadata", namespace, payloadKey, "sub"]);
}

function readIdentityClaim(source: IdentitySource, config: FilterConfig): string | null {
  if (source == IdentitySource.Static) return config.staticSpiffeId;
  const value = getProperty(source == IdentitySource.Mtls ? PEER_URI_SAN : config.jwtSubjectPath);
  if (value === null || value.byteLength == 0) return null;
  return String.UTF8.decode(value);
}

/** The first configured source that yields an identity decides; a malformed one is refused, not skipped. */
export function resolveIdentity(config: FilterConfig): IdentityResult {
  for (let i = 0; i < config.identitySources.length; i++) {
    const source = config.identitySources[i];
    const claim = readIdentityClaim(source, config);
    if (claim === null) continue;
    const spiffe = parseSpiffeId(claim);
    if (spiffe === null) {
      return new IdentityResult(null, "the verified identity is not an agent SPIFFE ID");
    }
    if (config.trustDomains.length > 0 && !config.trustDomains.includes(spiffe.trustDomain)) {
      return new IdentityResult(null, "the verified identity belongs to a trust domain that is not accepted");
    }
    return new IdentityResult(new Identity(spiffe, source), "");
  }
  return new IdentityResult(null, "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)");
}
