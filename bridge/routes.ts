// The bridge's HTTP API. The wasm filter is written against exactly these routes and statuses:
//   GET    /v1/cred/{key}                 200 value bytes | 404 miss
//   PUT    /v1/cred/{key}?ttl_ms=N        204
//   DELETE /v1/cred/{key}                 204, also when absent
//   PUT    /v1/locks/{key}?ttl_ms=N       body = owner token (optional); 201 taken | 409 held by another
//   DELETE /v1/locks/{key}                body = owner token (optional); 204, also when absent or not ours
//   POST   /v1/purge {"prefix": ...}      200 {"deleted": N}
//   POST   /v1/revocations {"prefix": ...} 200 {"epoch": N, "deleted": M}  (purge, then record)
//   GET    /v1/revocations?since=E        200 {"epoch": N, "prefixes": [...]}  (revoked at an epoch > E)
//   GET    /healthz                       200 {"status":"ok"} | 503
// {key} is always a credential key; the lock of one is addressed by the credential's key.
// Every route but /healthz first asks auth/access.ts who the caller is and whether it may
// (401 / 403 before anything else is read or touched).
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { AccessControl } from "./auth/access.ts";
import type { Caller } from "./auth/callers.ts";
import { badRequest, HttpError, methodNotAllowed, ValkeyUnavailableError } from "./errors.ts";
import { readBody, sendBytes, sendEmpty, sendError, sendJson } from "./http-io.ts";
import { parseCredentialKeyPath, parsePurgePrefix } from "./keys.ts";
import type { ExchangeLocks } from "./locks.ts";
import type { RevocationLog } from "./revocation-log.ts";
import type { BlobStore } from "./store.ts";
import { throttledErrorLog } from "./throttled-log.ts";
import type { CredentialVault } from "./vault.ts";
import { NO_BRIDGE_METRICS, operationOf, type BridgeMetrics } from "./metrics.ts";

const MAX_VALUE_BYTES = 16 * 1024;
const MAX_TTL_MS = 12 * 60 * 60 * 1000;
// A lock covers one exchange, not a credential's lifetime: one left by a dead pod must not hold the others back for long.
const MAX_LOCK_TTL_MS = 5 * 60 * 1000;
const MAX_OWNER_BYTES = 128;
const MAX_PREFIX_BODY_BYTES = 4096;
const CRED_PATH = "/v1/cred/";
const LOCKS_PATH = "/v1/locks/";
const TTL_MS = /^[1-9][0-9]{0,7}$/;
const SINCE = /^(?:-1|0|[1-9][0-9]{0,15})$/;
// What a lock taken without an owner token holds: SET needs some value.
const ANONYMOUS_OWNER = Buffer.from("1");

const MISS = new HttpError("NotFound", "no value for this key");
const NO_ROUTE = new HttpError("NotFound", "no such route");
const LOCK_HELD = new HttpError("Conflict", "another holder has this lock");
const HEALTHY = JSON.stringify({ status: "ok" });

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function createRequestHandler(
  vault: CredentialVault,
  store: BlobStore,
  locks: ExchangeLocks,
  revocationLog: RevocationLog,
  access: AccessControl,
  log: Logger,
  metrics: BridgeMetrics = NO_BRIDGE_METRICS,
): Handler {
  const logUnavailable = throttledErrorLog(log);

  /** The credential key of a keyed route, once the caller is known to be allowed its tenant. */
  const permittedKey = (caller: Caller, encodedKey: string): string => {
    const { key, identity } = parseCredentialKeyPath(encodedKey);
    access.requireKeyAccess(caller, identity);
    return key;
  };

  const credential = async (req: IncomingMessage, res: ServerResponse, caller: Caller, encodedKey: string, query: string) => {
    switch (req.method) {
      case "GET": {
        const value = await vault.get(permittedKey(caller, encodedKey));
        return value ? sendBytes(res, value) : sendError(res, MISS);
      }
      case "PUT": {
        const key = permittedKey(caller, encodedKey);
        const params = new URLSearchParams(query);
        if (params.has("nx")) throw badRequest("nx is not supported; locks are /v1/locks/{key}");
        const ttlMs = parseTtl(params, MAX_TTL_MS, "12 hours");
        await vault.put(key, await readBody(req, MAX_VALUE_BYTES), ttlMs);
        return sendEmpty(res, 204);
      }
      case "DELETE":
        await store.delete(permittedKey(caller, encodedKey));
        return sendEmpty(res, 204);
      default:
        throw methodNotAllowed("GET, PUT, DELETE");
    }
  };

  const lock = async (req: IncomingMessage, res: ServerResponse, caller: Caller, encodedKey: string, query: string) => {
    switch (req.method) {
      case "PUT": {
        const key = permittedKey(caller, encodedKey);
        const ttlMs = parseTtl(new URLSearchParams(query), MAX_LOCK_TTL_MS, "5 minutes");
        const owner = await readBody(req, MAX_OWNER_BYTES);
        const taken = await locks.acquire(key, owner.length > 0 ? owner : ANONYMOUS_OWNER, ttlMs);
        return taken ? sendEmpty(res, 201) : sendError(res, LOCK_HELD);
      }
      case "DELETE": {
        const key = permittedKey(caller, encodedKey);
        const owner = await readBody(req, MAX_OWNER_BYTES);
        // 204 also when the lock is gone or another holder's: either way the caller no longer holds it.
        await locks.release(key, owner.length > 0 ? owner : undefined);
        return sendEmpty(res, 204);
      }
      default:
        throw methodNotAllowed("PUT, DELETE");
    }
  };

  const purge = async (req: IncomingMessage, res: ServerResponse, caller: Caller) => {
    if (req.method !== "POST") throw methodNotAllowed("POST");
    await access.requireAdmin(req, caller);
    const prefix = await readPrefix(req);
    const deleted = await store.purge(prefix);
    metrics.purged("purge", deleted);
    sendJson(res, 200, JSON.stringify({ deleted }));
  };

  const revocations = async (req: IncomingMessage, res: ServerResponse, caller: Caller, query: string) => {
    switch (req.method) {
      case "POST": {
        await access.requireAdmin(req, caller);
        const prefix = await readPrefix(req);
        // Purge first, then record: a sidecar that sees the new epoch drops its L1 entries and finds
        // nothing under the prefix left in L2 to refill them from.
        const deleted = await store.purge(prefix);
        metrics.purged("revocation", deleted);
        const epoch = await revocationLog.record(prefix);
        metrics.revoked();
        return sendJson(res, 200, JSON.stringify({ epoch, deleted }));
      }
      case "GET": {
        const { epoch, prefixes, gap } = await revocationLog.since(parseSinceQuery(query));
        return sendJson(res, 200, JSON.stringify({ epoch, prefixes, gap }));
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
    // Open to anyone (a liveness probe presents no certificate): it tells only whether Valkey answers.
    if (path === "/healthz") return health(req, res);
    const caller = access.caller(req);
    if (path.startsWith(CRED_PATH)) return credential(req, res, caller, path.slice(CRED_PATH.length), query);
    if (path.startsWith(LOCKS_PATH)) return lock(req, res, caller, path.slice(LOCKS_PATH.length), query);
    if (path === "/v1/purge") return purge(req, res, caller);
    if (path === "/v1/revocations") return revocations(req, res, caller, query);
    return Promise.reject(NO_ROUTE);
  };

  return (req, res) => {
    const started = performance.now();
    const url = req.url ?? "/";
    const operation = operationOf(req.method, url.split("?")[0]);
    res.once("finish", () => metrics.request(operation, res.statusCode, (performance.now() - started) / 1000));
    // access.caller() throws synchronously; new Promise turns that into a rejection like the rest.
    new Promise<void>((resolve) => resolve(route(req, res))).catch((error: unknown) => {
      if (error instanceof ValkeyUnavailableError) {
        metrics.valkeyError(operation);
        logUnavailable({ reason: error.message, method: req.method }, "request failed: valkey unavailable");
      } else if (!(error instanceof HttpError)) {
        log.error({ reason: error instanceof Error ? error.message : String(error) }, "request failed unexpectedly");
      }
      if (res.headersSent) return res.destroy();
      sendError(res, error instanceof HttpError ? error : new HttpError("InternalError", "internal error"));
    });
  };
}

function parseTtl(params: URLSearchParams, max: number, maxInWords: string): number {
  const ttl = params.get("ttl_ms");
  if (ttl === null || !TTL_MS.test(ttl) || Number(ttl) > max) {
    throw badRequest(`ttl_ms is required: an integer from 1 to ${max} (${maxInWords})`);
  }
  return Number(ttl);
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
