// Request bodies: read within a byte limit, decoded as strict UTF-8, parsed as one JSON object with
// exactly the fields the request takes. Error messages describe what is wrong without quoting the
// body: the body is where values are.
import type { IncomingMessage } from "node:http";
import { isSecretName, VAULT } from "../contract/index.ts";
import { readBoundedBody } from "../service/bounded-body.ts";
import { badRequest, tooLarge, unsupportedMediaType } from "./errors.ts";

const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
/** In a u-flag regex a valid pair is one code point, so only an unpaired half matches. */
const LONE_SURROGATE = /\p{Cs}/u;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Whether the request announces a body at all (GET and DELETE take none). */
export function hasBody(request: IncomingMessage): boolean {
  return request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? 0) > 0;
}

/** The whole body, or 413 as soon as it is known to exceed `limit` bytes. */
export function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return readBoundedBody(request, limit, () => tooLarge(`the body is over its limit of ${limit} bytes`));
}

function jsonObject(request: IncomingMessage, body: Buffer, fields: readonly string[]): Record<string, unknown> {
  if (!JSON_TYPE.test(request.headers["content-type"] ?? "")) throw unsupportedMediaType();
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(body));
  } catch {
    throw badRequest("the body is not valid UTF-8 JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw badRequest("the body must be a JSON object");
  for (const key of Object.keys(parsed)) {
    if (!fields.includes(key)) throw badRequest(`unknown field in the body: it takes ${fields.join(", ")} only`);
  }
  return parsed as Record<string, unknown>;
}

/** `{"value": "..."}`: the value, at most VAULT.maxValueBytes of UTF-8. */
export function putBody(request: IncomingMessage, body: Buffer): string {
  const { value } = jsonObject(request, body, ["value"]);
  if (value === undefined) throw badRequest("the body needs a value");
  if (typeof value !== "string") throw badRequest("value must be a string");
  // A lone surrogate (JSON allows "\ud800") has no UTF-8 form: it would be stored as U+FFFD, another value.
  if (LONE_SURROGATE.test(value)) throw badRequest("value must be well-formed Unicode");
  if (Buffer.byteLength(value, "utf8") > VAULT.maxValueBytes) throw tooLarge(`value is over ${VAULT.maxValueBytes} bytes of UTF-8`);
  return value;
}

/** `{"names": [...]}`: 1 to VAULT.maxBatchNames distinct secret names. */
export function batchBody(request: IncomingMessage, body: Buffer): string[] {
  const { names } = jsonObject(request, body, ["names"]);
  if (names === undefined) throw badRequest("the body needs names");
  if (!Array.isArray(names) || names.length === 0 || names.length > VAULT.maxBatchNames) {
    throw badRequest(`names must be a list of 1 to ${VAULT.maxBatchNames} secret names`);
  }
  names.forEach((name, index) => {
    if (typeof name !== "string" || !isSecretName(name)) throw badRequest(`names[${index}] is not a secret name`);
  });
  if (new Set(names).size !== names.length) throw badRequest("names lists a name twice");
  return names as string[];
}
