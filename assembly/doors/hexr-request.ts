// The body of a Hexr exchange: {"service": string, "region"?: string}. Unknown members are ignored.
import { badRequest, notJsonObject, Rejection } from "../filter/errors";
import { isRegion, providerOf } from "../input/catalog";
import { FilterConfig } from "../input/config";
import { JsonKind, parseJson } from "../util/json";
import { message } from "../util/message";

/** The service and region a body asks for, or why it is refused (`rejection`, and nothing asked). */
export class HexrRequest {
  constructor(public service: string, public region: string, public rejection: Rejection | null) {}
}

function refused(rejection: Rejection): HexrRequest {
  return new HexrRequest("", "", rejection);
}

function refuse(problem: string): HexrRequest {
  return refused(badRequest(problem));
}

/** An exchange without a body (refused in its headers when they end the request). */
export function emptyBody(): Rejection {
  return badRequest(message("the request body is empty; send {\"service\": ...}"));
}

export function parseHexrRequest(body: ArrayBuffer, config: FilterConfig): HexrRequest {
  if (body.byteLength == 0) return refused(emptyBody());
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null) return refuse(message("the request body is not valid JSON"));
  if (root.kind != JsonKind.Object) return refused(notJsonObject());

  const service = root.member("service");
  if (service === null) return refuse(message("'service' is required"));
  if (service.kind != JsonKind.String) return refuse(message("'service' must be a string"));
  if (!config.services.includes(service.text)) return refuse(message("'service' is not a known service"));

  let region = config.defaultRegion(providerOf(service.text));
  const regionValue = root.member("region");
  if (regionValue !== null && regionValue.kind != JsonKind.Null) {
    if (regionValue.kind != JsonKind.String) return refuse(message("'region' must be a string"));
    if (!isRegion(regionValue.text)) return refuse(message("'region' must match ^[a-z0-9-]{1,32}$"));
    region = regionValue.text;
  }
  const provider = providerOf(service.text);
  if (!config.servesRegion(provider, region)) return refuse(message("'region' is not a region served for ") + provider);
  return new HexrRequest(service.text, region, null);
}
