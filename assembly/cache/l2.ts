// L2: Valkey, shared by every sidecar, reached through the bridge cluster over HTTP (a wasm
// filter can only make HTTP or gRPC calls). Requests follow the bridge's API: /v1/cred/{key}.
import { UpstreamConfig } from "../config";
import { Header } from "../proxy-wasm/host";

/** The bridge refuses TTLs beyond 12 h, the longest credential any provider issues. */
const MAX_TTL_MS: i64 = 43_200_000;

function isUnreserved(c: i32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e;
}

const HEX = "0123456789ABCDEF";

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

function requestHeaders(l2: UpstreamConfig, method: string, path: string): Header[] {
  return [new Header(":method", method), new Header(":path", path), new Header(":authority", l2.authority)];
}

export function l2GetRequest(l2: UpstreamConfig, key: string): Header[] {
  return requestHeaders(l2, "GET", "/v1/cred/" + encodePathSegment(key));
}

/** The bridge keeps the entry until the credential's real expiry; servability is checked on read. */
export function l2PutRequest(l2: UpstreamConfig, key: string, expiresAt: i64, nowSeconds: i64): Header[] {
  let ttlMs = (expiresAt - nowSeconds) * 1000;
  if (ttlMs > MAX_TTL_MS) ttlMs = MAX_TTL_MS;
  const headers = requestHeaders(l2, "PUT", "/v1/cred/" + encodePathSegment(key) + "?ttl_ms=" + ttlMs.toString());
  headers.push(new Header("content-type", "application/octet-stream"));
  return headers;
}

/** Purges Valkey under `prefix` and records the revocation for every sidecar to see. */
export function l2RevokeRequest(l2: UpstreamConfig): Header[] {
  const headers = requestHeaders(l2, "POST", "/v1/revocations");
  headers.push(new Header("content-type", "application/json"));
  return headers;
}

export function l2RevocationsSinceRequest(l2: UpstreamConfig, epoch: i64): Header[] {
  return requestHeaders(l2, "GET", "/v1/revocations?since=" + epoch.toString());
}

/**
 * The cross-pod exchange lock: "lock:{key}" set only if absent, for as long as one exchange may
 * take. The bridge answers 201 (ours) or 409 (another sidecar is exchanging this key).
 */
export function l2LockRequest(l2: UpstreamConfig, key: string, ttlMs: u32): Header[] {
  const headers = requestHeaders(l2, "PUT", "/v1/cred/" + encodePathSegment("lock:" + key) + "?ttl_ms=" + ttlMs.toString() + "&nx=1");
  headers.push(new Header("content-type", "application/octet-stream"));
  return headers;
}

/** Releases the lock as soon as the exchange ended, so a failure does not hold the other sidecars back. */
export function l2UnlockRequest(l2: UpstreamConfig, key: string): Header[] {
  return requestHeaders(l2, "DELETE", "/v1/cred/" + encodePathSegment("lock:" + key));
}
