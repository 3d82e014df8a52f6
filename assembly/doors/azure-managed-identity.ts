// The Azure managed-identity door: the App Service protocol that azure-identity (Python) and
// @azure/identity (through MSAL) use when IDENTITY_ENDPOINT and IDENTITY_HEADER are set. One
// request, top to bottom:
//   1. GET {azure_managed_identity.path}?api-version=2019-08-01&resource=..., with
//      X-IDENTITY-HEADER equal to the configured secret (App Service's guard against forged
//      requests), the listener's identity (the protocol carries no caller credential)
//   2. the resource → its Azure service (the contract's azure_resources, then configured ones),
//      the local allow-list; key = cred:{spiffe-id}:{service}:{azure default region}
//   3. resolve/: L1 → L2 → L3, answered in this very callback on an L1 hit
//   4. 200 {"access_token","expires_on","resource","token_type"}, or {"error","error_description"}
import { badRequest, credentialError, ErrorType, escapeJson, Rejection, serviceNotAllowed, unauthenticated } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { FilterState } from "../filter/state";
import { CredentialRequest } from "../input/credential-request";
import { AzureManagedIdentityDoorConfig } from "../input/door-config";
import { HeaderPairs, sendLocalResponseWithReplyHeaders } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { bytesEqualAt } from "../util/ascii";
import { message } from "../util/message";
import { beginAnswer, beginCredentialHeaders, findStringFields, finishAnswer, writeDecimal, writeField, writeText } from "./credential-answer";
import { CredentialDoor } from "./credential-door";
import { decodedQueryValue, findQueryValue } from "./query";

const FIELDS: string[] = ["access_token"];
const API_VERSION = "2019-08-01";
const MAX_RESOURCE = 256;
/** Parameters that pick a user-assigned identity: this door serves exactly one identity. */
const IDENTITY_SELECTORS: string[] = ["client_id", "mi_res_id", "object_id", "principal_id"];

export class AzureManagedIdentityDoor extends CredentialDoor {
  constructor(state: FilterState, contextId: u32, private readonly door: AzureManagedIdentityDoorConfig) {
    super(state, contextId);
  }

  // ---- 1. the request ----

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "GET")) {
      return this.reject(new Rejection(405, ErrorType.BadRequest, message("use GET for the managed identity endpoint")));
    }
    const door = this.door;
    const presented = headers.occurrences("x-identity-header");
    if (presented == 0) return this.reject(badRequest(message("the X-IDENTITY-HEADER header is required")));
    if (presented > 1 || !secretEquals(headers.foundAt, headers.foundSize, door.identityHeader)) {
      return this.reject(unauthenticated(message("the X-IDENTITY-HEADER header is not this endpoint's")));
    }
    const resolved = this.verifyCaller();
    const identity = resolved.identity;
    if (identity === null) return this.reject(unauthenticated(resolved.reason));
    headers.find(":path");
    const path = headers.foundAt;
    const size = headers.foundSize;
    let request = this.recentForPath(identity, path, size);
    if (request === null) {
      // ---- 2. which credential ----
      const rejection = this.checkQuery(path, size);
      if (rejection !== null) return this.reject(rejection);
      const service = serviceOfResource(door, path, size);
      if (service === null) return this.reject(new Rejection(400, ErrorType.BadRequest, message("'resource' is not a resource this sidecar serves tokens for")));
      if (!this.state.config.resources.allows(identity.spiffe, service)) {
        return this.reject(serviceNotAllowed());
      }
      request = this.newRequestForPath(identity, service, this.state.config.defaultRegion("azure"), path, size);
    }

    // ---- 3. resolve: L1 → L2 → L3 ----
    return this.resolve(request);
  }

  private checkQuery(path: usize, size: i32): Rejection | null {
    if (!findQueryValue(path, size, "api-version")) return badRequest(message("'api-version' is required (") + API_VERSION + ")");
    const version = decodedQueryValue(16);
    if (version === null || version != API_VERSION) return badRequest(message("'api-version' must be ") + API_VERSION);
    for (let i = 0; i < IDENTITY_SELECTORS.length; i++) {
      if (findQueryValue(path, size, IDENTITY_SELECTORS[i])) {
        return badRequest(message("this endpoint serves one identity: '") + IDENTITY_SELECTORS[i] + message("' cannot pick another"));
      }
    }
    if (!findQueryValue(path, size, "resource")) return badRequest(message("'resource' is required"));
    return null;
  }

  // ---- 4. the answer ----

  serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void {
    if (!findStringFields(body, FIELDS) || expiresAt <= 0) {
      this.reject(credentialError(502, message("the credential for this service is not an Entra ID access token")));
      return;
    }
    const resource = resourceOfService(this.door, request.service);
    beginAnswer(body.byteLength + 128 + resource.length);
    writeText("{\"access_token\":\"");
    writeField(0);
    writeText("\",\"expires_on\":\"");
    writeDecimal(expiresAt);
    writeText("\",\"resource\":\"");
    writeText(resource);
    writeText("\",\"token_type\":\"Bearer\"}");
    beginCredentialHeaders("application/json", request, tier, expiresAt, 0);
    this.answered();
    sendLocalResponseWithReplyHeaders(200, "hexr_credential", finishAnswer());
  }

  /** The OAuth error shape that MSAL and azure-identity read from managed-identity endpoints. */
  reject(rejection: Rejection): Action {
    const json = message("{\"error\":\"") + oauthError(rejection.status) + message("\",\"error_description\":\"") + escapeJson(rejection.message) + "\"}";
    return this.refuseWith(rejection, Uint8Array.wrap(String.UTF8.encode(json)), "application/json", "GET");
  }
}

function oauthError(status: u32): string {
  if (status == 400 || status == 405) return message("invalid_request");
  if (status == 401) return message("unauthorized_client");
  if (status == 403) return message("access_denied");
  if (status == 429 || status == 503 || status == 504) return message("temporarily_unavailable");
  return message("server_error");
}

/** Compares every byte whatever differs first, so the time taken tells nothing about the secret. */
function secretEquals(at: usize, size: i32, secret: string): bool {
  let difference = size ^ secret.length;
  for (let i = 0; i < secret.length; i++) {
    const presented = i < size ? <i32>load<u8>(at + <usize>i) : 0;
    difference |= presented ^ secret.charCodeAt(i);
  }
  return difference == 0;
}

/** The service whose resource `resource=` names: "https://storage.azure.com", with "/" or "/.default" after it or not. */
function serviceOfResource(door: AzureManagedIdentityDoorConfig, path: usize, size: i32): string | null {
  findQueryValue(path, size, "resource");
  let resource = decodedQueryValue(MAX_RESOURCE);
  if (resource === null) return null;
  if (resource.endsWith("/.default")) resource = resource.substring(0, resource.length - 9);
  else if (resource.endsWith("/")) resource = resource.substring(0, resource.length - 1);
  const index = door.resources.indexOf(resource);
  return index < 0 ? null : door.resourceServices[index];
}

function resourceOfService(door: AzureManagedIdentityDoorConfig, service: string): string {
  const index = door.resourceServices.indexOf(service);
  return index < 0 ? "" : door.resources[index];
}
