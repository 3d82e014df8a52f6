// The GCE metadata door: the part of the metadata server (http://metadata.google.internal/
// computeMetadata/v1/) that google-auth (Python) and gcp-metadata / google-auth-library (Node)
// read, found through GCE_METADATA_HOST and GCE_METADATA_IP. One request, top to bottom:
//   1. GET with `Metadata-Flavor: Google` (refused without it: the guard against a request forged
//      through some other service, as on GCE), the listener's identity (the protocol carries no
//      caller credential: this door serves the identity its listener is configured with)
//   2. the path: the detection pings, the service account's description, project and universe,
//      or its token, which is a credential of gce_metadata.service like any other
//   3. resolve/: L1 → L2 → L3, answered in this very callback on an L1 hit
//   4. every answer carries `Metadata-Flavor: Google` (the Node client refuses any other)
import { credentialError, ErrorType, Rejection, serviceNotAllowed, unauthenticated } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { FilterState } from "../filter/state";
import { GCE_METADATA_PREFIX } from "../input/config";
import { CredentialRequest } from "../input/credential-request";
import { GceMetadataDoorConfig } from "../input/door-config";
import { Identity } from "../input/identity";
import { addReplyHeader, Header, HeaderPairs, sendLocalResponseWithReplyHeaders } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { bytesEqualAt } from "../util/ascii";
import { nowMilliseconds } from "../util/clock";
import { message } from "../util/message";
import { beginAnswer, beginCredentialHeaders, findStringFields, finishAnswer, writeDecimal, writeField, writeText } from "./credential-answer";
import { CredentialDoor } from "./credential-door";
import { findQueryValue, pathLength } from "./query";

const FIELDS: string[] = ["access_token"];
const FLAVOR = "metadata-flavor";
const GOOGLE = "Google";
const TEXT = "application/text";
const JSON_TYPE = "application/json";
const V1 = GCE_METADATA_PREFIX + "v1";
const SERVICE_ACCOUNTS = V1 + "/instance/service-accounts";
/** The longest path this door reads (beyond it, nothing it serves can match). */
const MAX_PATH = 256;

export class GceMetadataDoor extends CredentialDoor {
  constructor(state: FilterState, contextId: u32, private readonly door: GceMetadataDoorConfig) {
    super(state, contextId);
  }

  // ---- 1. the request ----

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "GET")) {
      return this.reject(new Rejection(405, ErrorType.BadRequest, message("use GET for the metadata server")));
    }
    if (headers.occurrences(FLAVOR) != 1 || !bytesEqualAt(headers.foundAt, headers.foundSize, GOOGLE)) {
      return this.reject(new Rejection(403, ErrorType.AuthenticationError, message("missing required header: Metadata-Flavor: Google")));
    }
    const resolved = this.verifyCaller();
    const identity = resolved.identity;
    if (identity === null) return this.reject(unauthenticated(resolved.reason));
    headers.find(":path");
    const path = headers.foundAt;
    const size = headers.foundSize;
    const recent = this.recentForPath(identity, path, size);
    if (recent !== null) return this.resolve(recent);

    // ---- 2. the path ----
    const length = pathLength(path, size);
    if (length > MAX_PATH) return this.notFound();
    const name = String.UTF8.decodeUnsafe(path, <usize>length);
    const config = this.door;
    if (name == "/") return this.text("computeMetadata/\n");
    if (isDirectory(name, V1)) return this.text("instance/\nproject/\nuniverse/\n");
    if (isDirectory(name, V1 + "/instance")) return this.text("service-accounts/\n");
    if (isDirectory(name, SERVICE_ACCOUNTS)) return this.text(listing(["default/", config.serviceAccountEmail + "/"]));
    if (name == V1 + "/project/project-id") return this.text(config.projectId);
    if (name == V1 + "/project/numeric-project-id" && config.numericProjectId.length > 0) return this.text(config.numericProjectId);
    if (name == V1 + "/universe/universe-domain") return this.text(config.universeDomain);
    if (!name.startsWith(SERVICE_ACCOUNTS + "/")) return this.notFound();
    return this.serviceAccount(name.substring(SERVICE_ACCOUNTS.length + 1), identity, config, path, size);
  }

  /** instance/service-accounts/{default or the configured email}/...: the one account this identity has. */
  private serviceAccount(rest: string, identity: Identity, config: GceMetadataDoorConfig, path: usize, size: i32): Action {
    const slash = rest.indexOf("/");
    const account = slash < 0 ? rest : rest.substring(0, slash);
    if (account != "default" && account != config.serviceAccountEmail) return this.notFound();
    const item = slash < 0 ? "" : rest.substring(slash + 1);
    if (item == "" || item == "/") {
      if (!findQueryValue(path, size, "recursive")) return this.text("aliases\nemail\nidentity\nscopes\ntoken\n");
      return this.json(accountDescription(config));
    }
    if (item == "email") return this.text(config.serviceAccountEmail);
    if (item == "aliases") return this.text("default\n");
    if (item == "scopes") return this.text(listing(config.scopes));
    if (item == "identity") {
      return this.reject(new Rejection(404, ErrorType.BadRequest, message("identity tokens are not served by this sidecar")));
    }
    if (item != "token") return this.notFound();
    // The token is the credential of the configured service, whatever ?scopes= asks: its reach is
    // what policy granted this identity for that service.
    const state = this.state;
    if (!state.config.resources.allows(identity.spiffe, config.service)) {
      return this.reject(serviceNotAllowed());
    }

    // ---- 3. resolve: L1 → L2 → L3 ----
    return this.resolve(this.newRequestForPath(identity, config.service, state.config.defaultRegion("gcp"), path, size));
  }

  // ---- 4. the answers ----

  serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void {
    if (!findStringFields(body, FIELDS) || expiresAt <= 0) {
      this.reject(credentialError(502, message("the credential for this service is not a Google access token")));
      return;
    }
    const remaining = expiresAt - nowMilliseconds() / 1000;
    beginAnswer(body.byteLength + 64);
    writeText("{\"access_token\":\"");
    writeField(0);
    writeText("\",\"expires_in\":");
    writeDecimal(remaining > 0 ? remaining : 0);
    writeText(",\"token_type\":\"Bearer\"}");
    beginCredentialHeaders(JSON_TYPE, request, tier, expiresAt, 1);
    addReplyHeader(FLAVOR, GOOGLE);
    this.answered();
    sendLocalResponseWithReplyHeaders(200, "hexr_credential", finishAnswer());
  }

  /** The metadata server's own way: a short plain-text reason. */
  reject(rejection: Rejection): Action {
    const body = Uint8Array.wrap(String.UTF8.encode(rejection.message + "\n"));
    return this.refuseWith(rejection, body, TEXT, "GET", new Header(FLAVOR, GOOGLE));
  }

  private notFound(): Action {
    return this.reject(new Rejection(404, ErrorType.BadRequest, message("not found: this metadata server serves the default service account, project and universe")));
  }

  private text(value: string): Action {
    return this.reply(200, "hexr_metadata", Uint8Array.wrap(String.UTF8.encode(value)), [new Header("content-type", TEXT), new Header(FLAVOR, GOOGLE)]);
  }

  private json(value: string): Action {
    return this.reply(200, "hexr_metadata", Uint8Array.wrap(String.UTF8.encode(value)), [new Header("content-type", JSON_TYPE), new Header(FLAVOR, GOOGLE)]);
  }
}

function isDirectory(path: string, directory: string): bool {
  return path == directory || (path.length == directory.length + 1 && path.startsWith(directory) && path.endsWith("/"));
}

function listing(items: string[]): string {
  return items.join("\n") + "\n";
}

/** `?recursive=true` on the account: what google-auth reads before it asks for a token. */
function accountDescription(config: GceMetadataDoorConfig): string {
  // Every value passed the configuration's plain-text check: nothing to escape.
  return "{\"aliases\":[\"default\"],\"email\":\"" + config.serviceAccountEmail + "\",\"scopes\":[\"" + config.scopes.join("\",\"") + "\"]}";
}
