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
  // The last verified claim this worker resolved and what it resolved to: an agent asks again and
  // again, and the same bytes always resolve the same way, so a repeat costs one compare instead
  // of a decode and a parse.
  recentClaim: ArrayBuffer | null = null;
  recentSource: IdentitySource = IdentitySource.Static;
  recentResult: IdentityResult | null = null;
}

/** The URI SAN of the peer certificate Envoy validated (Envoy's connection attributes). */
const PEER_URI_SAN = propertyPath(["connection", "uri_san_peer_certificate"]);

/** Where jwt_authn's verified `sub` is: its dynamic metadata, which no client can write. */
export function jwtSubjectPath(namespace: string, payloadKey: string): ArrayBuffer {
  return propertyPath(["metadata", "filter_metadata", namespace, payloadKey, "sub"]);
}

export class IdentityResult {
  constructor(public identity: Identity | null, public reason: string) {}
}

/** The first configured source that yields an identity decides; a malformed one is refused, not skipped. */
export function resolveIdentity(settings: IdentitySettings): IdentityResult {
  for (let i = 0; i < settings.sources.length; i++) {
    const source = settings.sources[i];
    if (source == IdentitySource.Static) return evaluate(settings.staticSpiffeId!, source, settings);
    const claim = getProperty(source == IdentitySource.Mtls ? PEER_URI_SAN : settings.jwtSubjectPath);
    if (claim === null || claim.byteLength == 0) continue;
    const recent = settings.recentClaim;
    if (recent !== null && settings.recentSource == source && sameBytes(claim, recent)) return settings.recentResult!;
    const result = evaluate(String.UTF8.decode(claim), source, settings);
    settings.recentClaim = claim;
    settings.recentSource = source;
    settings.recentResult = result;
    return result;
  }
  return new IdentityResult(null, "no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)");
}

function evaluate(claim: string, source: IdentitySource, settings: IdentitySettings): IdentityResult {
  const spiffe = parseSpiffeId(claim);
  if (spiffe === null) {
    return new IdentityResult(null, "the verified identity is not an agent SPIFFE ID");
  }
  if (settings.trustDomains.length > 0 && !settings.trustDomains.includes(spiffe.trustDomain)) {
    return new IdentityResult(null, "the verified identity belongs to a trust domain that is not accepted");
  }
  return new IdentityResult(new Identity(spiffe, source), "");
}

function sameBytes(a: ArrayBuffer, b: ArrayBuffer): bool {
  return a.byteLength == b.byteLength && memory.compare(changetype<usize>(a), changetype<usize>(b), <usize>a.byteLength) == 0;
}
