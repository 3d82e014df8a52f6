// Reading bounded request bodies and writing the bridge's responses.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBoundedBody } from "../service/bounded-body.ts";
import { HttpError } from "./errors.ts";

const tooLarge = (limit: number) => new HttpError("PayloadTooLarge", `body larger than ${limit} bytes`);

/** The whole body, or HttpError 413 as soon as it is known to exceed `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return readBoundedBody(req, limit, () => tooLarge(limit));
}

export function sendBytes(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
  res.end(body);
}

/** 201 or 204 without a body; a 204 must not carry content-length (RFC 9110), and Envoy holds upstreams to that. */
export function sendEmpty(res: ServerResponse, status: 201 | 204): void {
  res.writeHead(status, status === 204 ? {} : { "content-length": 0 });
  res.end();
}

export function sendJson(res: ServerResponse, status: number, json: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(json) });
  res.end(json);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  // The rest of an oversized body is not worth reading just to keep the connection open; nor is
  // anything more from a connection without a verified certificate (it cannot get one later).
  const close = error.status === 413 || error.status === 401;
  const headers = close ? { ...error.headers, connection: "close" } : error.headers;
  sendJson(res, error.status, error.toJson(), headers);
}
