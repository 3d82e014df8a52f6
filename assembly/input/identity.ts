// Who is calling: a SPIFFE ID that Envoy verified (the mTLS peer certificate, or the `sub` of the
// JWT-SVID that jwt_authn verified, whose `iss`, `aud` and `exp` the filter checks again), or the
// configured static one. Nothing a client can set in a header is ever consulted.
import { getProperty, propertyPath } from "../proxy-wasm/host";
import { message } from "../util/message";
import { claimsFingerprint, FINGERPRINT, readJwtClaims } from "./jwt-claims";
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
  constructor(
    public spiffe: SpiffeId,
    public source: IdentitySource,
    /** The JWT-SVID's `exp` (epoch s): the identity is not accepted from then on; -1: no such bound. */
    public notAfter: i64 = -1,
  ) {}
}

/** Where identities may come from, in order, and which trust domains are accepted. */
export class IdentitySettings {
  sources: IdentitySource[] = [IdentitySource.Mtls, IdentitySource.Jwt];
  jwtPayloadPath: ArrayBuffer = jwtPayloadPath("envoy.filters.http.jwt_authn", "jwt_payload");
  /** Accepted `iss` values and `aud` values of JWT-SVIDs; empty: that claim is not checked again. */
  jwtIssuers: string[] = [];
  jwtAudiences: string[] = [];
  /** The listener's own identity for the static source; "" when not configured. */
  staticSpiffeId: string = "";
  /** The trust domains accepted (required with the mtls or jwt source). */
  trustDomains: string[] = [];
  // The last verified claim this worker resolved (a certificate's URI SAN, or the fingerprint of a
  // JWT-SVID's claims) and what it resolved to: an agent asks again and again, and the same claims
  // always resolve the same way, so a repeat costs one compare instead of a decode and a parse.
  recentClaim: ArrayBuffer | null = null;
  recentSource: IdentitySource = IdentitySource.Static;
  recentResult: IdentityResult | null = null;
  /** The static identity, evaluated once: the same object every time, as RecentRequest compares it. */
  staticResult: IdentityResult | null = null;
}

/** The URI SAN of the peer certificate Envoy validated (Envoy's connection attributes). */
const PEER_URI_SAN = propertyPath(["connection", "uri_san_peer_certificate"]);

/** Where jwt_authn's verified payload is: its dynamic metadata, which no client can write. */
export function jwtPayloadPath(namespace: string, payloadKey: string): ArrayBuffer {
  return propertyPath(["metadata", "filter_metadata", namespace, payloadKey]);
}

export class IdentityResult {
  constructor(public identity: Identity | null, public reason: string) {}
}

/** The first configured source that yields an identity decides; a malformed one is refused, not skipped. */
export function resolveIdentity(settings: IdentitySettings): IdentityResult {
  for (let i = 0; i < settings.sources.length; i++) {
    const source = settings.sources[i];
    if (source == IdentitySource.Static) return staticIdentity(settings);
    const claim = getProperty(source == IdentitySource.Mtls ? PEER_URI_SAN : settings.jwtPayloadPath);
    if (claim === null || claim.byteLength == 0) continue;
    if (source == IdentitySource.Mtls) {
      const recent = rememberedResult(settings, source, changetype<usize>(claim), claim.byteLength);
      if (recent !== null) return recent;
      return remember(settings, source, claim, evaluate(String.UTF8.decode(claim), source, settings));
    }
    const size = claimsFingerprint(claim);
    const recent = size >= 0 ? rememberedResult(settings, source, FINGERPRINT, size) : null;
    if (recent !== null) return recent;
    const result = evaluateJwt(claim, settings);
    if (size < 0) return result;
    const fingerprint = new ArrayBuffer(size);
    memory.copy(changetype<usize>(fingerprint), FINGERPRINT, <usize>size);
    return remember(settings, source, fingerprint, result);
  }
  return new IdentityResult(null, message("no verified SPIFFE identity (present an X.509-SVID or a JWT-SVID)"));
}

function staticIdentity(settings: IdentitySettings): IdentityResult {
  let result = settings.staticResult;
  if (result === null) settings.staticResult = result = evaluate(settings.staticSpiffeId, IdentitySource.Static, settings);
  return result;
}

/** The verified payload's claims: `sub` the identity, `iss` and `aud` among the accepted, `exp` present. */
function evaluateJwt(payload: ArrayBuffer, settings: IdentitySettings): IdentityResult {
  const claims = readJwtClaims(payload);
  const subject = claims !== null ? claims.sub : null;
  if (claims === null || subject === null) return new IdentityResult(null, message("the verified JWT-SVID has no subject"));
  const issuers = settings.jwtIssuers;
  const issuer = claims.iss;
  if (issuers.length > 0 && (issuer === null || !issuers.includes(issuer))) {
    return new IdentityResult(null, message("the JWT-SVID's issuer is not accepted"));
  }
  if (settings.jwtAudiences.length > 0 && !anyOf(claims.aud, settings.jwtAudiences)) {
    return new IdentityResult(null, message("the JWT-SVID's audience is not accepted"));
  }
  if (claims.exp <= 0) return new IdentityResult(null, message("the JWT-SVID has no expiry"));
  const result = evaluate(subject, IdentitySource.Jwt, settings);
  const identity = result.identity;
  if (identity !== null) identity.notAfter = <i64>claims.exp;
  return result;
}

function anyOf(values: string[], accepted: string[]): bool {
  for (let i = 0; i < values.length; i++) if (accepted.includes(values[i])) return true;
  return false;
}

function evaluate(claim: string, source: IdentitySource, settings: IdentitySettings): IdentityResult {
  const spiffe = parseSpiffeId(claim);
  if (spiffe === null) {
    return new IdentityResult(null, message("the verified identity is not an agent SPIFFE ID"));
  }
  if (settings.trustDomains.length > 0 && !settings.trustDomains.includes(spiffe.trustDomain)) {
    return new IdentityResult(null, message("the verified identity belongs to a trust domain that is not accepted"));
  }
  return new IdentityResult(new Identity(spiffe, source), "");
}

/** The result remembered for this very claim, if it is the last one evaluated. */
function rememberedResult(settings: IdentitySettings, source: IdentitySource, claim: usize, size: i32): IdentityResult | null {
  const recent = settings.recentClaim;
  const same = recent !== null && settings.recentSource == source && recent.byteLength == size &&
    memory.compare(claim, changetype<usize>(recent), <usize>size) == 0;
  return same ? settings.recentResult : null;
}

function remember(settings: IdentitySettings, source: IdentitySource, claim: ArrayBuffer, result: IdentityResult): IdentityResult {
  settings.recentClaim = claim;
  settings.recentSource = source;
  settings.recentResult = result;
  return result;
}
