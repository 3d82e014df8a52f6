// The body of a Hexr exchange: {"service": string, "region"?: string}. Unknown members are ignored.
import { badRequest, Rejection } from "../filter/errors";
import { isRegion, providerOf } from "../input/catalog";
import { FilterConfig } from "../input/config";
import { JsonKind, parseJson } from "../util/json";

export class HexrRequest {
  constructor(public service: string, public region: string) {}
}

export class ParsedHexrRequest {
  constructor(public request: HexrRequest | null, public rejection: Rejection | null) {}
}

function refuse(message: string): ParsedHexrRequest {
  return new ParsedHexrRequest(null, badRequest(message));
}

export function parseHexrRequest(body: ArrayBuffer | null, config: FilterConfig): ParsedHexrRequest {
  if (body === null || body.byteLength == 0) return refuse("the request body is empty; send {\"service\": ...}");
  const root = parseJson(String.UTF8.decode(body)).value;
  if (root === null) return refuse("the request body is not valid JSON");
  if (root.kind != JsonKind.Object) return refuse("the request body must be a JSON object");

  const service = root.member("service");
  if (service === null) return refuse("'service' is required");
  if (service.kind != JsonKind.String) return refuse("'service' must be a string");
  if (!config.services.includes(service.text)) return refuse("'service' is not a known service");

  let region = config.defaultRegion(providerOf(service.text));
  const regionValue = root.member("region");
  if (regionValue !== null && regionValue.kind != JsonKind.Null) {
    if (regionValue.kind != JsonKind.String) return refuse("'region' must be a string");
    if (!isRegion(regionValue.text)) return refuse("'region' must match ^[a-z0-9-]{1,32}$");
    region = regionValue.text;
  }
  const provider = providerOf(service.text);
  if (!config.servesRegion(provider, region)) return refuse("'region' is not a region served for " + provider);
  return new ParsedHexrRequest(new HexrRequest(service.text, region), null);
}
