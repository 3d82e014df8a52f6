// The admin's revocation endpoint: POST {revocation.path} from a configured admin identity, naming
// one SPIFFE ID, a tenant or everything. The bridge purges L2 under the matching key prefix and logs
// the revocation under a new epoch; every VM of every sidecar polls that log (poller.ts) and empties
// its L1 entries under the prefix. This VM empties its own at once.
import { Door } from "../doors/door";
import { badRequest, credentialError, ErrorType, notJsonObject, Rejection, unauthenticated } from "../filter/errors";
import { FilterState } from "../filter/state";
import { RevocationConfig } from "../input/config";
import { resolveIdentity } from "../input/identity";
import { isPathSegment, parseSpiffeId } from "../input/spiffe-id";
import { dispatchHttpCall, HttpCallHandler } from "../proxy-wasm/context";
import { getBuffer, getHeaderBytes, Header, HeaderPairs } from "../proxy-wasm/host";
import { Action, BufferType, MapType } from "../proxy-wasm/types";
import { recordRevocation } from "../tiers/bridge";
import { ALL_CREDENTIALS_PREFIX, identityPrefix, tenantPrefix } from "../tiers/keys";
import { forgetKeysWithPrefix } from "../tiers/stored-keys";
import { bytesEqualAt, decimal, decimalValue } from "../util/ascii";
import { nowMilliseconds } from "../util/clock";
import { JsonKind, JsonValue, parseJson } from "../util/json";
import { message } from "../util/message";

/** Purging Valkey scans every master: give it longer than a cache lookup. */
const REVOCATION_TIMEOUT_MS: u32 = 5000;

export class RevocationEndpoint extends Door implements HttpCallHandler {
  /** The admin's trust domain: a tenant is revoked in it. */
  private adminTrustDomain: string = "";
  private prefix: string = "";
  /** The admin's own JWT-SVID: the bridge verifies it itself before it purges anything. */
  private adminToken: ArrayBuffer | null = null;

  constructor(state: FilterState, contextId: u32, private readonly revocation: RevocationConfig) {
    super(state, contextId);
  }

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "POST")) return this.reject(new Rejection(405, ErrorType.BadRequest, message("use POST to revoke")));
    const resolved = resolveIdentity(this.state.config.identity);
    const identity = resolved.identity;
    if (identity === null) return this.reject(unauthenticated(resolved.reason));
    const admin = identity.spiffe;
    if (!this.revocation.adminSpiffeIds.includes(admin.uri)) {
      return this.reject(credentialError(403, message("this identity may not revoke credentials")));
    }
    if (endOfStream) return this.reject(notJsonObject());
    this.adminTrustDomain = admin.trustDomain;
    this.adminToken = headers.value("authorization");
    this.expectsBody = true;
    return Action.Continue;
  }

  onBody(body: ArrayBuffer | null): Action {
    this.expectsBody = false;
    const target = revocationTarget(body, this.adminTrustDomain);
    if (target.rejection !== null) return this.reject(target.rejection!);
    this.prefix = target.prefix;
    const bridge = this.revocation.bridge;
    const call = recordRevocation(bridge, this.adminToken);
    if (dispatchHttpCall(bridge.cluster, call, jsonBody("{\"prefix\":\"" + this.prefix + "\"}"), REVOCATION_TIMEOUT_MS, this) == 0) {
      return this.reject(notRecorded());
    }
    this.startWaiting(nowMilliseconds());
    return Action.Pause;
  }

  callContextId(): u32 {
    return this.contextId;
  }

  onHttpCallResponse(numHeaders: u32, bodySize: u32): void {
    const epoch = recordedEpoch(numHeaders, bodySize);
    if (epoch < 0) {
      this.reject(notRecorded());
      return;
    }
    this.state.worker.revocations.add(this.prefix, nowMilliseconds() / 1000, true);
    this.state.metrics.evicted(forgetKeysWithPrefix(this.prefix));
    const answer = "{\"revoked\":\"" + this.prefix + "\",\"epoch\":" + decimal(epoch) + "}";
    this.reply(200, "hexr_revoked", jsonBody(answer), [new Header("content-type", "application/json")]);
  }
}

function notRecorded(): Rejection {
  return credentialError(503, message("the revocation could not be recorded"));
}

class RevocationTarget {
  constructor(public prefix: string, public rejection: Rejection | null) {}
}

function refused(rejection: Rejection): RevocationTarget {
  return new RevocationTarget("", rejection);
}

/**
 * Body: exactly one of {"spiffe_id": ...}, {"tenant": ...} (in the admin's trust domain), {"all": true}.
 * The prefix is built from validated parts only, so it needs no escaping.
 */
function revocationTarget(body: ArrayBuffer | null, adminTrustDomain: string): RevocationTarget {
  const root = body !== null ? parseJson(String.UTF8.decode(body)).value : null;
  if (root === null || root.kind != JsonKind.Object) return refused(notJsonObject());
  const spiffeId = root.member("spiffe_id");
  const tenant = root.member("tenant");
  const all = root.member("all");
  const named = (spiffeId !== null ? 1 : 0) + (tenant !== null ? 1 : 0) + (all !== null ? 1 : 0);
  if (named != 1) return refused(badRequest(message("name exactly one of 'spiffe_id', 'tenant' or 'all'")));
  if (spiffeId !== null) {
    const id = stringOf(spiffeId);
    if (id === null || parseSpiffeId(id) === null) return refused(badRequest(message("'spiffe_id' must be an agent SPIFFE ID")));
    return new RevocationTarget(identityPrefix(id), null);
  }
  if (tenant !== null) {
    const name = stringOf(tenant);
    if (name === null || !isPathSegment(name)) return refused(badRequest(message("'tenant' must be a tenant name")));
    return new RevocationTarget(tenantPrefix(adminTrustDomain, name), null);
  }
  if (all === null || all.kind != JsonKind.Bool || !all.boolean) return refused(badRequest(message("'all' must be true")));
  return new RevocationTarget(ALL_CREDENTIALS_PREFIX, null);
}

function stringOf(value: JsonValue): string | null {
  return value.kind == JsonKind.String ? value.text : null;
}

function jsonBody(json: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(json));
}

/** The epoch the bridge recorded the revocation under, or -1. */
function recordedEpoch(numHeaders: u32, bodySize: u32): i64 {
  if (numHeaders == 0 || bodySize == 0) return -1;
  if (decimalValue(getHeaderBytes(MapType.HttpCallResponseHeaders, ":status")) != 200) return -1;
  const body = getBuffer(BufferType.HttpCallResponseBody, 0, bodySize);
  const root = body !== null ? parseJson(String.UTF8.decode(body)).value : null;
  const epoch = root !== null ? root.member("epoch") : null;
  return epoch !== null && epoch.isInteger() && epoch.number >= 0 ? <i64>epoch.number : -1;
}
