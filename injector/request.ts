// The exchange request itself: framing (method, content type, size), the JSON body, and the
// service and region it asks for, cross-checked against the headers the filter added.
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { HEADERS, REGIONS, isRegion, providerOf, type Provider } from "../contract/index.ts";
import { REGION_RULE, type ServiceCatalog } from "./catalog.ts";
import type { ServedRegions } from "./config.ts";
import { badRequest } from "./errors.ts";
import { singleHeader } from "./headers.ts";

export interface ExchangeTarget {
  service: string;
  provider: Provider;
  region: string;
}

/** Rejects what can be rejected before reading the body: 405, 415, 413. */
export function checkFraming(request: IncomingMessage, maxBodyBytes: number): void {
  if (request.method !== "POST") throw badRequest("use POST for /exchange", 405, { allow: "POST" });
  const mediaType = (request.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
  if (mediaType !== "application/json") throw badRequest("content-type must be application/json", 415);
  if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) throw tooLarge(maxBodyBytes);
}

/** The whole body, or 413 as soon as it grows past the limit (chunked bodies included). */
export async function readBody(request: IncomingMessage, maxBodyBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw tooLarge(maxBodyBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export function parseTarget(
  body: Buffer,
  headers: IncomingHttpHeaders,
  catalog: ServiceCatalog,
  defaultRegions: Readonly<Record<Provider, string>>,
  servedRegions: ServedRegions = REGIONS,
): ExchangeTarget {
  const fields = parseObject(body);
  const service = fields.service;
  if (typeof service !== "string") throw badRequest('"service" is required and must be a string');
  if (!catalog.has(service)) throw badRequest(`unknown service ${JSON.stringify(service)}`);
  const headerService = singleHeader(headers, HEADERS.service);
  if (headerService !== undefined && headerService !== service) throw badRequest(`${HEADERS.service} does not match the body's service`);

  if (fields.region !== undefined && fields.region !== null && typeof fields.region !== "string") {
    throw badRequest('"region" must be a string');
  }
  const provider = providerOf(service);
  const region = singleHeader(headers, HEADERS.region) ?? (fields.region as string | null | undefined) ?? defaultRegions[provider];
  if (!isRegion(region)) throw badRequest(`region must match ${REGION_RULE}`);
  // The allow-list per provider (the contract's, or the configured narrower one): regions bound the
  // keys an identity can make, and no provider serves a region outside its list.
  const served = servedRegions[provider];
  if (served !== "any" && !served.includes(region)) throw badRequest(`region is not a region served for ${provider}`);
  return { service, provider, region };
}

function parseObject(body: Buffer): Record<string, unknown> {
  if (body.length === 0) throw badRequest("the body must be a JSON object");
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw badRequest("the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw badRequest("the body must be a JSON object");
  return parsed as Record<string, unknown>;
}

function tooLarge(maxBodyBytes: number) {
  return badRequest(`the body is larger than ${maxBodyBytes} bytes`, 413);
}
