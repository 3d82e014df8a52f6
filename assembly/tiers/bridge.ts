// The bridge: L2 (Valkey, shared by every sidecar), the cross-pod exchange lock and the revocation
// log, reached over the bridge cluster with HTTP (a wasm filter can only make HTTP or gRPC calls).
// The routes and statuses are the bridge's API (bridge/README.md).
import { UpstreamConfig } from "../input/config";
import { Header } from "../proxy-wasm/host";
import { decimal } from "../util/ascii";

/** The bridge refuses TTLs beyond 12 h, the longest credential any provider issues. */
const MAX_CREDENTIAL_TTL_MS: i64 = 43_200_000;
const HEX = "0123456789ABCDEF";

function isUnreserved(c: i32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e;
}

/** Percent-encodes a validated key (ASCII only by construction) for use as one path segment. */
function encodePathSegment(key: string): string {
  let out = "";
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i) & 0xff;
    if (isUnreserved(c)) out += String.fromCharCode(c);
    else out += "%" + HEX.charAt(c >> 4) + HEX.charAt(c & 15);
  }
  return out;
}

function request(bridge: UpstreamConfig, method: string, path: string): Header[] {
  return [new Header(":method", method), new Header(":path", path), new Header(":authority", bridge.authority)];
}

function withContentType(headers: Header[], contentType: string): Header[] {
  headers.push(new Header("content-type", contentType));
  return headers;
}

/** 200 with the entry, 404 on a miss. */
export function getCredential(bridge: UpstreamConfig, key: string): Header[] {
  return request(bridge, "GET", "/v1/cred/" + encodePathSegment(key));
}

/** The bridge keeps the entry until the credential's real expiry; servability is checked on read. */
export function putCredential(bridge: UpstreamConfig, key: string, expiresAt: i64, nowSeconds: i64): Header[] {
  let ttlMs = (expiresAt - nowSeconds) * 1000;
  if (ttlMs > MAX_CREDENTIAL_TTL_MS) ttlMs = MAX_CREDENTIAL_TTL_MS;
  const path = "/v1/cred/" + encodePathSegment(key) + "?ttl_ms=" + decimal(ttlMs);
  return withContentType(request(bridge, "PUT", path), "application/octet-stream");
}

/**
 * Takes the cross-pod exchange lock of a credential key for as long as one exchange may take;
 * the body is the holder's token. 201: taken; 409: another sidecar is exchanging this key.
 */
export function takeLock(bridge: UpstreamConfig, key: string, ttlMs: u32): Header[] {
  const path = "/v1/locks/" + encodePathSegment(key) + "?ttl_ms=" + decimal(ttlMs);
  return withContentType(request(bridge, "PUT", path), "application/octet-stream");
}

/** Releases the lock if this holder's token still holds it (the body carries the token). */
export function releaseLock(bridge: UpstreamConfig, key: string): Header[] {
  return withContentType(request(bridge, "DELETE", "/v1/locks/" + encodePathSegment(key)), "application/octet-stream");
}

/**
 * Purges L2 under a prefix and records the revocation for every sidecar: 200 {"epoch", "deleted"}.
 * Carries the admin's own token: the bridge acts only for an admin it has verified itself.
 */
export function recordRevocation(bridge: UpstreamConfig, adminToken: ArrayBuffer | null): Header[] {
  const headers = withContentType(request(bridge, "POST", "/v1/revocations"), "application/json");
  if (adminToken !== null) headers.push(new Header("authorization", String.UTF8.decode(adminToken)));
  return headers;
}

/** 200 {"epoch": N, "prefixes": [...]}: the prefixes revoked after `epoch`. */
export function revocationsSince(bridge: UpstreamConfig, epoch: i64): Header[] {
  return request(bridge, "GET", "/v1/revocations?since=" + decimal(epoch));
}
