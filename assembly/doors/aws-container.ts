// The AWS container-credentials door: what boto3, the AWS SDK for JavaScript and every other AWS
// SDK call when AWS_CONTAINER_CREDENTIALS_FULL_URI points here. One request, top to bottom:
//   1. GET {aws_container.path}[?service=aws_s3&region=us-west-2], Authorization: the process's
//      JWT-SVID as it is (the SDK sends AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE's content, no
//      scheme, re-read on every fetch); jwt_authn has verified it on this path
//   2. the service (default aws_container.service) and region (default the aws default region),
//      the local allow-list; key = cred:{spiffe-id}:{service}:{region}
//   3. resolve/: L1 → L2 → L3, answered in this very callback on an L1 hit (a GET has no body)
//   4. 200 {"AccessKeyId","SecretAccessKey","Token","Expiration"}, or {"code","message"}
import { badRequest, credentialError, ErrorType, errorTypeName, escapeJson, Rejection, serviceNotAllowed, severalTokens, unauthenticated } from "../filter/errors";
import { Tier } from "../filter/metrics";
import { FilterState } from "../filter/state";
import { isRegion, providerOf } from "../input/catalog";
import { CredentialRequest } from "../input/credential-request";
import { AwsContainerDoorConfig } from "../input/door-config";
import { HeaderPairs, sendLocalResponseWithReplyHeaders } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { bytesEqualAt } from "../util/ascii";
import { message } from "../util/message";
import { beginAnswer, beginCredentialHeaders, findStringFields, finishAnswer, writeField, writeText } from "./credential-answer";
import { CredentialDoor, hasSeveralTokens } from "./credential-door";
import { decodedQueryValue, findQueryValue } from "./query";

/** The fields of the injector's AWS answer, in the order the answer writes them. */
const FIELDS: string[] = ["AccessKeyId", "SecretAccessKey", "SessionToken", "expiration"];
const BEARER = "Bearer ";
const MAX_QUERY_VALUE = 64;

export class AwsContainerDoor extends CredentialDoor {
  private headers: HeaderPairs | null = null;

  constructor(state: FilterState, contextId: u32, private readonly door: AwsContainerDoorConfig) {
    super(state, contextId);
  }

  // ---- 1. the request ----

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "GET")) {
      return this.reject(new Rejection(405, ErrorType.BadRequest, message("use GET for the container credentials endpoint")));
    }
    if (hasSeveralTokens(headers)) return this.reject(severalTokens());
    const resolved = this.verifyCaller();
    const identity = resolved.identity;
    if (identity === null) return this.reject(unauthenticated(resolved.reason));
    this.headers = headers;
    headers.find(":path");
    const path = headers.foundAt;
    const size = headers.foundSize;

    // ---- 2. which credential ----
    let request = this.recentForPath(identity, path, size);
    if (request === null) {
      const config = this.state.config;
      let service = this.door.service;
      if (findQueryValue(path, size, "service")) {
        const named = decodedQueryValue(MAX_QUERY_VALUE);
        if (named === null || providerOf(named) != "aws" || !config.services.includes(named)) {
          return this.reject(badRequest(message("'service' must name an AWS service of the catalog")));
        }
        service = named;
      }
      let region = config.defaultRegion("aws");
      if (findQueryValue(path, size, "region")) {
        const named = decodedQueryValue(MAX_QUERY_VALUE);
        if (named === null || !isRegion(named) || !config.servesRegion("aws", named)) {
          return this.reject(badRequest(message("'region' is not a region served for aws")));
        }
        region = named;
      }
      if (!config.resources.allows(identity.spiffe, service)) {
        return this.reject(serviceNotAllowed());
      }
      request = this.newRequestForPath(identity, service, region, path, size);
    }

    // ---- 3. resolve: L1 → L2 → L3 ----
    return this.resolve(request);
  }

  // ---- 4. the answer ----

  /** The injector re-verifies the JWT-SVID, which it takes in the usual Bearer form. */
  agentToken(): ArrayBuffer | null {
    const headers = this.headers;
    if (headers === null || !headers.find("authorization")) return null;
    const token = new ArrayBuffer(BEARER.length + headers.foundSize);
    String.UTF8.encodeUnsafe(changetype<usize>(BEARER), BEARER.length, changetype<usize>(token));
    memory.copy(changetype<usize>(token) + <usize>BEARER.length, headers.foundAt, <usize>headers.foundSize);
    return token;
  }

  serve(request: CredentialRequest, body: Uint8Array, tier: Tier, expiresAt: i64): void {
    if (!findStringFields(body, FIELDS)) {
      this.reject(credentialError(502, message("the credential for this service is not an AWS credential")));
      return;
    }
    beginAnswer(body.byteLength + 64);
    writeText("{\"AccessKeyId\":\"");
    writeField(0);
    writeText("\",\"SecretAccessKey\":\"");
    writeField(1);
    writeText("\",\"Token\":\"");
    writeField(2);
    writeText("\",\"Expiration\":\"");
    writeField(3);
    writeText("\"}");
    beginCredentialHeaders("application/json", request, tier, expiresAt, 0);
    this.answered();
    sendLocalResponseWithReplyHeaders(200, "hexr_credential", finishAnswer());
  }

  /** The shape of the ECS agent's errors, which the SDKs quote in their exception. */
  reject(rejection: Rejection): Action {
    const json = message("{\"code\":\"") + errorTypeName(rejection.type) + message("\",\"message\":\"") + escapeJson(rejection.message) + "\"}";
    return this.refuseWith(rejection, Uint8Array.wrap(String.UTF8.encode(json)), "application/json", "GET");
  }
}
