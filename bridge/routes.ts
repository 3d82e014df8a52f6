// The bridge's HTTP API. The wasm filter is written against exactly these routes and statuses:
//   GET    /v1/cred/{key}                 200 value bytes | 404 miss
//   PUT    /v1/cred/{key}?ttl_ms=N[&nx=1] 204 | with nx: 201 created, 409 exists (lock: keys allowed)
//   DELETE /v1/cred/{key}                 204, also when absent (lock: keys allowed: releasing a lock)
//   POST   /v1/purge {"prefix": ...}      200 {"deleted": N}
//   POST   /v1/revocations {"prefix": ...} 200 {"epoch": N, "deleted": M}  (purge, then record)
//   GET    /v1/revocations?since=E        200 {"epoch": N, "prefixes": [...]}  (revoked at an epoch > E)
//   GET    /healthz                       200 {"status":"ok"} | 503
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { badRequest, HttpError, methodNotAllowed, ValkeyUnavailableError } from "./errors.ts";
import { readBody, sendBytes, sendEmpty, sendError, sendJson } from "./http-io.ts";
import { parseKey, parsePurgePrefix } from "./keys.ts";
import type { RevocationLog } from "./revocation-log.ts";
import type { BlobStore } from "./store.ts";
import { throttledErrorLog } from "./throttled-log.ts";
import type { CredentialVault } from "./vault.ts";

const MAX_VALUE_BYTES = 16 * 1024;
const MAX_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_PREFIX_BODY_BYTES = 4096;
const CRED_PATH = "/v1/cred/";
const TTL_MS = /^[1-9][0-9]{0,7}$/;
const SINCE = /^(?:-1|0|[1-9][0-9]{0,15})$/;

const MISS = new HttpError("NotFound", "no value for this key");
const NO_ROUTE = new HttpError("NotFound", "no such route");
const CONFLICT = new HttpError("Conflict", "key already exists");
const HEALTHY = JSON.stringify({ status: "ok" });

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function createRequestHandler(
  vault: CredentialVault,
  store: BlobStore,
  revocationLog: RevocationLog,
  log: Logger,
): Handler {
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
        // A lock's holder releases it when its exchange ends, so a failure holds nobody back.
        await store.delete(parseKey(encodedKey, true));
        return sendEmpty(res, 204);
      default:
        throw methodNotAllowed("GET, PUT, DELETE");
    }
  };

  const purge = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "POST") throw methodNotAllowed("POST");
    const prefix = await readPrefix(req);
    sendJson(res, 200, JSON.stringify({ deleted: await store.purge(prefix) }));
  };

  const revocations = async (req: IncomingMessage, res: ServerResponse, query: string) => {
    switch (req.method) {
      case "POST": {
        const prefix = await readPrefix(req);
        // Purge first, then record: a sidecar that sees the new epoch drops its L1 entries and finds
        // nothing under the prefix left in L2 to refill them from.
        const deleted = await store.purge(prefix);
        const epoch = await revocationLog.record(prefix);
        return sendJson(res, 200, JSON.stringify({ epoch, deleted }));
      }
      case "GET": {
        const { epoch, prefixes } = await revocationLog.since(parseSinceQuery(query));
        return sendJson(res, 200, JSON.stringify({ epoch, prefixes }));
      }
      default:
        throw methodNotAllowed("GET, POST");
    }
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
    const query = queryStart === -1 ? "" : url.slice(queryStart + 1);
    if (path.startsWith(CRED_PATH)) return credential(req, res, path.slice(CRED_PATH.length), query);
    if (path === "/v1/purge") return purge(req, res);
    if (path === "/v1/revocations") return revocations(req, res, query);
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

function parseSinceQuery(query: string): number {
  const since = new URLSearchParams(query).get("since");
  if (since === null || !SINCE.test(since) || !Number.isSafeInteger(Number(since))) {
    throw badRequest(`since is required: an integer from -1 to ${Number.MAX_SAFE_INTEGER}`);
  }
  return Number(since);
}

/** The body of purge and revocation requests: {"prefix": "cred:spiffe://..."}. */
async function readPrefix(req: IncomingMessage): Promise<string> {
  return parsePurgePrefix(parseJsonObject(await readBody(req, MAX_PREFIX_BODY_BYTES)).prefix);
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
