// The agent's request body: {"service": string, "region"?: string}. Unknown members are ignored.
import { isValidRegion, providerOf } from "./catalog";
import { FilterConfig } from "./config";
import { badRequest, Rejection } from "./errors";
import { JsonKind, parseJson } from "./json";

export class ExchangeRequest {
  constructor(public service: string, public provider: string, public region: string) {}
}

export class ParsedRequest {
  constructor(public request: ExchangeRequest | null, public rejection: Rejection | null) {}
}

function reject(message: string): ParsedRequest {
  return new ParsedRequest(null, badRequest(message));
}

export function parseExchangeRequest(body: ArrayBuffer, config: FilterConfig): ParsedRequest {
  if (body.byteLength == 0) return reject("the request body is empty; send {\"service\": ...}");
  const parsed = parseJson(String.UTF8.decode(body));
  const root = parsed.value;
  if (root === null) return reject("the request body is not valid JSON");
  if (root.kind != JsonKind.Object) return reject("the request body must be a JSON object");

  const service = root.member("service");
  if (service === null) return reject("'service' is required");
  if (service.kind != JsonKind.String) return reject("'service' must be a string");
  if (!config.services.includes(service.text)) return reject("'service' is not a known service");
  const provider = providerOf(service.text);

  let region = config.defaultRegion(provider);
  const regionValue = root.member("region");
  if (regionValue !== null && regionValue.kind != JsonKind.Null) {
    if (regionValue.kind != JsonKind.String) return reject("'region' must be a string");
    if (!isValidRegion(regionValue.text)) return reject("'region' must match ^[a-z0-9-]{1,32}$");
    region = regionValue.text;
  }
  return new ParsedRequest(new ExchangeRequest(service.text, provider, region), null);
}
