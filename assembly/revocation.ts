// Revocation: an admin identity names what to revoke (one SPIFFE ID, a tenant, or everything);
// the bridge purges Valkey and logs the prefix under a new epoch; every VM of every sidecar polls
// that log and empties its L1 entries under each new prefix. Keys are "cred:{spiffe-id}:...", so
// each target is a key prefix.
import { badRequest, credentialError, Rejection } from "./errors";
import { isPathSegment, parseSpiffeId, SpiffeId } from "./identity";
import { JsonKind, JsonValue, parseJson } from "./json";
import { RevocationConfig } from "./config";

export class RevocationRequest {
  constructor(public prefix: string | null, public rejection: Rejection | null) {}
}

function rejected(rejection: Rejection): RevocationRequest {
  return new RevocationRequest(null, rejection);
}

/** Body: exactly one of {"spiffe_id": ...}, {"tenant": ...} (in the admin's trust domain), {"all": true}. */
export function parseRevocationRequest(body: ArrayBuffer, admin: SpiffeId, config: RevocationConfig): RevocationRequest {
  if (!config.adminSpiffeIds.includes(admin.uri)) {
    return rejected(credentialError(403, "this identity may not revoke credentials"));
  }
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null || root.kind != JsonKind.Object) return rejected(badRequest("the request body must be a JSON object"));
  const spiffeId = root.member("spiffe_id");
  const tenant = root.member("tenant");
  const all = root.member("all");
  const named = (spiffeId !== null ? 1 : 0) + (tenant !== null ? 1 : 0) + (all !== null ? 1 : 0);
  if (named != 1) return rejected(badRequest("name exactly one of 'spiffe_id', 'tenant' or 'all'"));
  if (spiffeId !== null) {
    const id = stringOf(spiffeId);
    if (id === null || parseSpiffeId(id) === null) return rejected(badRequest("'spiffe_id' must be an agent SPIFFE ID"));
    return new RevocationRequest("cred:" + id + ":", null);
  }
  if (tenant !== null) {
    const name = stringOf(tenant);
    if (name === null || !isPathSegment(name)) return rejected(badRequest("'tenant' must be a tenant name"));
    return new RevocationRequest("cred:spiffe://" + admin.trustDomain + "/agent/" + name + "/", null);
  }
  if (all!.kind != JsonKind.Bool || !all!.boolean) return rejected(badRequest("'all' must be true"));
  return new RevocationRequest("cred:spiffe://", null);
}

function stringOf(value: JsonValue): string | null {
  return value.kind == JsonKind.String ? value.text : null;
}

/** The prefix is built from validated parts only ([A-Za-z0-9._:/-]), so it needs no escaping. */
export function revocationBody(prefix: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode("{\"prefix\":\"" + prefix + "\"}"));
}

export function revokedBody(prefix: string, epoch: i64): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode("{\"revoked\":\"" + prefix + "\",\"epoch\":" + epoch.toString() + "}"));
}

/** The bridge's log since some epoch: {"epoch": N, "prefixes": [...]}; null when it is not that. */
export class RevocationLog {
  constructor(public epoch: i64, public prefixes: string[]) {}
}

export function parseRevocationLog(body: ArrayBuffer): RevocationLog | null {
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null) return null;
  const epoch = root.member("epoch");
  const list = root.member("prefixes");
  if (epoch === null || !epoch.isInteger() || epoch.number < 0 || list === null || list.kind != JsonKind.Array) return null;
  const prefixes = new Array<string>();
  for (let i = 0; i < list.items.length; i++) {
    const item = list.items[i];
    // Only prefixes of the shape this filter revokes: anything else is ignored, never applied widely.
    if (item.kind == JsonKind.String && item.text.startsWith("cred:spiffe://")) prefixes.push(item.text);
  }
  return new RevocationLog(<i64>epoch.number, prefixes);
}
