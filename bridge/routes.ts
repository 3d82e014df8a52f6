// The bridge's HTTP API. The wasm filter is written against exactly these routes and statuses:
//   GET    /v1/cred/{key}                 200 value bytes | 404 miss
//   PUT    /v1/cred/{key}?ttl_ms=N[&nx=1] 204 | with nx: 201 created, 409 exists (lock: keys allowed)
//   DELETE /v1/cred/{key}                 204, also when absent
//   POST   /v1/purge {"prefix": ...}      200 {"deleted": N}
//   GET    /healthz                       200 {"status":"ok"} | 503
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { badRequest, HttpError, methodNotAllowed, ValkeyUnavailableError } from "./errors.ts";
import { readBody, sendBytes, sendEmpty, sendError, sendJson } from "./http-io.ts";
import { parseKey, parsePurgePrefix } from "./keys.ts";
import type { BlobStore } from "./store.ts";
import { throttledErrorLog } from "./throttled-log.ts";
import type { CredentialVault } from "./vault.ts";

const MAX_VALUE_BYTES = 16 * 1024;
const MAX_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_PURGE_BODY_BYTES = 4096;
const CRED_PATH = "/v1/cred/";
const TTL_MS = /^[1-9][0-9]{0,7}$/;

const MISS = new HttpError("NotFound", "no value for this key");
const NO_ROUTE = new HttpError("NotFound", "no such route");
const CONFLICT = new HttpError("Conflict", "key already exists");
const HEALTHY = JSON.stringify({ status: "ok" });

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function createRequestHandler(vault: CredentialVault, store: BlobStore, log: Logger): Handler {
  const logUnavailable = throttledErrorLog(log);

  const credential = async (req: IncomingMessage, res: ServerResponse, encodedKey: string, query: string) => {
    switch (req.method) {
      case "GET": {
        const value = await vault.get(parseKey(encodedKey, false));
        return value ? sendBytes(res, value) : sendError(res, MISS);
      }
      case "PUT": {
        const { ttlMs, nx } = parseWriteQuery(query);
        const key = parseKey(encodedKey, nx);
        const value = await readBody(req, MAX_VALUE_BYTES);
        if (nx) return (await vault.putIfAbsent(key, value, ttlMs)) ? sendEmpty(res, 201) : sendError(res, CONFLICT);
        await vault.put(key, value, ttlMs);
        return sendEmpty(res, 204);
      }
      case "DELETE":
        await store.delete(parseKey(encodedKey, false));
        return sendEmpty(res, 204);
      default:
        throw methodNotAllowed("GET, PUT, DELETE");
    }
  };

  const purge = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "POST") throw methodNotAllowed("POST");
    const prefix = parsePurgePrefix(parseJsonObject(await readBody(req, MAX_PURGE_BODY_BYTES)).prefix);
    sendJson(res, 200, JSON.stringify({ deleted: await store.purge(prefix) }));
  };

  const health = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "GET") throw methodNotAllowed("GET");
    await store.ping();
    sendJson(res, 200, HEALTHY);
  };

  const route = (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? "/";
    const queryStart = url.indexOf("?");
    const path = queryStart === -1 ? url : url.slice(0, queryStart);
    if (path.startsWith(CRED_PATH)) {
      return credential(req, res, path.slice(CRED_PATH.length), queryStart === -1 ? "" : url.slice(queryStart + 1));
    }
    if (path === "/v1/purge") return purge(req, res);
    if (path === "/healthz") return health(req, res);
    return Promise.reject(NO_ROUTE);
  };

  return (req, res) => {
    route(req, res).catch((error: unknown) => {
      if (error instanceof ValkeyUnavailableError) {
        logUnavailable({ reason: error.message, method: req.method }, "request failed: valkey unavailable");
      } else if (!(error instanceof HttpError)) {
        log.error({ reason: error instanceof Error ? error.message : String(error) }, "request failed unexpectedly");
      }
      if (res.headersSent) return res.destroy();
      sendError(res, error instanceof HttpError ? error : new HttpError("InternalError", "internal error"));
    });
  };
}

function parseWriteQuery(query: string): { ttlMs: number; nx: boolean } {
  const params = new URLSearchParams(query);
  const ttl = params.get("ttl_ms");
  if (ttl === null || !TTL_MS.test(ttl) || Number(ttl) > MAX_TTL_MS) {
    throw badRequest(`ttl_ms is required: an integer from 1 to ${MAX_TTL_MS} (12 hours)`);
  }
  const nx = params.get("nx");
  if (nx !== null && nx !== "1") throw badRequest("nx must be 1 when given");
  return { ttlMs: Number(ttl), nx: nx === "1" };
}

function parseJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw badRequest("body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw badRequest("body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}
