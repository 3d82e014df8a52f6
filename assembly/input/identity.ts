// Who is calling: a SPIFFE ID that Envoy verified (the mTLS peer certificate, or the `sub` that
// jwt_authn verified), or the configured static one. Nothing a client can set in a header is
// ever consulted.
import { getProperty, propertyPath } from "../proxy-wasm/host";
import { parseSpiffeId, SpiffeId } from "./spiffe-id";

export const enum IdentitySource { Mtls, Jwt, Static }

const SOURCE_NAMES: string[] = ["mtls", "jwt", "static"];

export function identitySourceName(source: IdentitySource): string {
  return SOURCE_NAMES[<i32>source];
}

/** The source named `name` in configuration, or -1. */
export function identitySourceNamed(name: string): i32 {
  return SOURCE_NAMES.indexOf(name);
}

export class Identity {
  constructor(public spiffe: SpiffeId, public source: IdentitySource) {}
}

/** Where identities may come from, in order, and which trust domains are accepted. */
export class IdentitySettings {
  sources: IdentitySource[] = [IdentitySource.Mtls, IdentitySource.Jwt];
  jwtSubjectPath: ArrayBuffer = jwtSubjectPath("envoy.filters.http.jwt_authn", "jwt_payload");
  staticSpiffeId: string | null = null;
  /** Empty: any trust domain. */
  trustDomains: string[] = [];
}

/** The URI SAN of the peer certificate Envoy validated (Envoy's connection attributes). */
const PEER_URI_SAN = propertyPath(["connection", "uri_san_peer_certificate"]);

/** Where jwt_authn's verified `sub` is: its dynamic metadata, which no client can write. */
export function jwtSubjectPath(namespace: string, payloadKey: string): ArrayBuffer {
  return propertyPath(["metadata", "filter_metadata", namespace, payloadKey, "sub"]);
}

function readClaim(source: IdentitySource, settings: IdentitySettings): string | null {
  if (source == IdentitySource.Static) return settings.staticSpiffeId;
  const value = getProperty(source == IdentitySource.Mtls ? PEER_URI_SAN : settings.jwtSubjectPath);
  if (value === null || value.byteLength == 0) return null;
  return String.UTF8.decode(value);
}

export class IdentityResult {
  constructor(public identity: Identity | null, public reason: string) {}
}

/** The first configured source that yields an identity decides; a malformed one is refused, not skipped. */
export function resolveIdentity(settings: IdentitySettings): IdentityResult {
  for (let i = 0; i < settings.sources.length; i++) {
    const source = settings.sources[i];
    const claim = readClaim(source, settings);
    if (claim === null) continue;
    const spiffe = parseSpiffeId(claim);
    if (spiffe === null) {
      return new IdentityResult(null, "the verified identity is not an agent SPIFFE ID");
    }
    if (settings.trustDomains.length > 0 && !settings.trustDomains.includes(spiffe.trustDomain)) {
      return new IdentityResult(null, "the verified identity belongs to a trust domain that is not accepted");
    }
    return new IdentityResult(new Identity(spiffe, source), "");
  }
  return new IdentityResult(null, "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)");
}
