// startVault(): the vault's HTTPS server, as `npm run vault`, the local stack and the tests run it.
// Every connection is mutual TLS: the server presents its own X.509-SVID and refuses, at the
// handshake, any client without a certificate from the trust bundle (both re-read as SPIRE rotates
// them). Each request is then authenticated (auth.ts), routed (routes.ts), served (secrets.ts),
// recorded in the audit log, and only then answered, always with cache-control: no-store and the
// contract's error body when it fails. One log line per request, never with a value in it.
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { verifyAudit } from "./audit.ts";
import { Authenticator, callerSpiffeId, type Identity } from "./auth.ts";
import { batchBody, hasBody, putBody, readBody } from "./body.ts";
import { parseConfig, type VaultConfig } from "./config.ts";
import type { KeyRing } from "./crypto/keyring.ts";
import {
  badRequest, IntegrityError, integrityFailure, internalError, KekUnavailable, kekUnavailable, StoreUnavailable, storeUnavailable, trustBundleUnavailable,
  unauthenticated, VaultError,
} from "./errors.ts";
import { JwtSvidVerifier } from "../spiffe/jwt-svid.ts";
import { checkKeyRing, loadKeyRing } from "./keys.ts";
import { createLogger, type Logger } from "./log.ts";
import { routeOf, type Route } from "./routes.ts";
import { auditEntries, SecretService, type Reply, type RequestContext } from "./secrets.ts";
import { openStore } from "./store/open.ts";
import type { VaultStore } from "./store/store.ts";
import { readTlsMaterial, watchTlsFiles } from "../spiffe/tls-files.ts";
import { ServiceMetrics } from "../service/metrics.ts";
import { createVaultMetrics, NO_VAULT_METRICS, type VaultMetrics } from "./metrics.ts";

export interface StartOptions {
  /** Default: pino on stderr at the configured level. */
  logger?: Logger;
  /** Relative paths in the config are resolved against this (default: the working directory). */
  baseDir?: string;
  /** How often the TLS files are checked for a change; default 30 s. */
  tlsReloadIntervalMs?: number;
}

export interface RunningVault {
  port: number;
  /** https://HOST:PORT */
  url: string;
  config: VaultConfig;
  store: VaultStore;
  keyring: KeyRing;
  /** http://HOST:PORT/metrics, or null without a metrics section. */
  metricsUrl: string | null;
  close(): Promise<void>;
}

/** Envoy keeps upstream connections open; closing idle ones first would race its next request. */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** A slow client may not hold a request open longer than this. */
const REQUEST_TIMEOUT_MS = 30_000;
/** How long a shutdown waits for requests in flight (their writes and audit records) to finish. */
const DRAIN_MS = 5_000;
/** The audit head is logged this often (when it moved): anchors outside the database, for detecting a rewritten chain. */
const AUDIT_ANCHOR_INTERVAL_MS = 60_000;

export async function startVault(input: unknown, options: StartOptions = {}): Promise<RunningVault> {
  const config = parseConfig(input, options.baseDir);
  const log = options.logger ?? createLogger(config.log_level);
  const store = await openStore(config.store, log);
  let keyring: KeyRing | undefined;
  try {
    keyring = loadKeyRing(config.kek, log);
    await checkKeyRing(store, keyring, log);
    return await serve(config, store, keyring, log, options);
  } catch (error) {
    keyring?.close();
    await store.close().catch(() => {});
    throw error;
  }
}

async function serve(config: VaultConfig, store: VaultStore, keyring: KeyRing, log: Logger, options: StartOptions): Promise<RunningVault> {
  const serviceMetrics = ServiceMetrics.create("hexr-vault", config.metrics);
  const metrics = createVaultMetrics(serviceMetrics);
  const timedStore = metrics.instrument(store);
  const handler = new RequestHandler(
    config,
    timedStore,
    new Authenticator(config, new JwtSvidVerifier(config.jwt, config.trust_domains, { rejected: unauthenticated, unavailable: trustBundleUnavailable })),
    new SecretService(timedStore, keyring, { versionsKept: config.limits.versions_kept, maxSecrets: config.limits.max_secrets_per_namespace }),
    log,
    metrics,
  );
  const files = { cert: config.tls.cert_file, key: config.tls.key_file, trustBundle: config.tls.client_ca_file };
  const server = https.createServer(
    {
      ...readTlsMaterial(files),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAlive: true,
      noDelay: true,
    },
    (request, response) => void handler.handle(request, response),
  );
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 5_000;
  const stopWatching = watchTlsFiles(files, (fresh) => server.setSecureContext({ ...fresh, minVersion: "TLSv1.2" }), log, options.tlsReloadIntervalMs);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((error) => {
    stopWatching();
    throw error;
  });
  const metricsServer = await serviceMetrics.serve().catch(async (error) => {
    stopWatching();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw error;
  });
  const anchor = auditAnchor(store, log);
  await anchor.log();
  const timer = setInterval(() => void anchor.log(), AUDIT_ANCHOR_INTERVAL_MS);
  timer.unref();

  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host;
  return {
    port,
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    config,
    store,
    keyring,
    metricsUrl: metricsServer?.url ?? null,
    async close() {
      clearInterval(timer);
      stopWatching();
      await metricsServer?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await handler.drain(DRAIN_MS);
      server.closeAllConnections();
      await closed;
      await anchor.log();
      keyring.close();
      await store.close();
    },
  };
}

/** Logs the audit head whenever it moved: seq and hash, nothing else. */
function auditAnchor(store: VaultStore, log: Logger): { log(): Promise<void> } {
  let last = -1;
  return {
    async log() {
      try {
        const head = await store.auditHead();
        if (head.seq === last) return;
        last = head.seq;
        log.info({ audit_seq: head.seq, audit_head: head.hash }, "audit head");
      } catch (error) {
        log.warn({ reason: (error as Error).message }, "audit head unavailable");
      }
    },
  };
}

class RequestHandler {
  private inFlight = 0;
  private idle: (() => void) | null = null;

  constructor(
    private readonly config: VaultConfig,
    private readonly store: VaultStore,
    private readonly auth: Authenticator,
    private readonly secrets: SecretService,
    private readonly log: Logger,
    private readonly metrics: VaultMetrics = NO_VAULT_METRICS,
  ) {}

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.inFlight++;
    try {
      await this.answer(request, response);
    } catch (error) {
      // Only sending can fail here (the client went away): nothing left to answer.
      this.log.debug({ reason: (error as Error).message }, "answer not sent");
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idle?.();
    }
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const started = performance.now();
    const context: RequestContext = {
      caller: null, spiffeId: null, operation: "unknown", name: null, scope: null, version: null, items: null, audited: false,
    };
    const body = { read: false };
    let reply: Reply | undefined;
    let failure: VaultError | undefined;
    try {
      // What is asked is told first (it only names the audit record's operation and name), then who asks.
      const routed = routeOf(request.method ?? "", request.url ?? "/");
      context.operation = routed.operation;
      context.name = routed.name;
      context.caller = callerSpiffeId(request.socket);
      const caller = this.auth.caller(context.caller);
      const identity = await this.auth.identity(request.headersDistinct, caller);
      context.spiffeId = identity.agent.spiffeId;
      if (routed.error) throw routed.error;
      reply = await this.dispatch(routed.route, identity, request, context, body);
    } catch (error) {
      failure = this.failure(error, context);
    }
    if (!context.audited) {
      // Recorded before the answer; an answer that cannot be recorded is not given.
      try {
        await this.store.appendAudit(auditEntries(context, failure?.status ?? reply!.status));
      } catch (error) {
        this.log.error({ reason: (error as Error).message }, "audit record could not be written; answering 503");
        failure = storeUnavailable();
        reply = undefined;
      }
    }
    const status = failure?.status ?? reply!.status;
    const line = {
      operation: context.operation, status, spiffe_id: context.spiffeId, caller: context.caller,
      name: context.name, scope: context.scope, version: context.version,
      ...(context.items ? { names: context.items.map((item) => item.name) } : {}),
      ...(failure ? { outcome: failure.outcome } : {}),
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    this.metrics.request(context.operation, status, failure?.outcome ?? "ok", (performance.now() - started) / 1000);
    if (status >= 500) this.log.warn(line, "request failed");
    else this.log.info(line, "request");
    send(response, request, reply, failure, body.read);
  }

  /** Resolves once no request is in flight, or after `ms`. */
  drain(ms: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async dispatch(route: Route, identity: Identity, request: IncomingMessage, context: RequestContext, body: { read: boolean }): Promise<Reply> {
    const readJson = async () => {
      const bytes = await readBody(request, this.config.limits.max_body_bytes);
      body.read = true;
      return bytes;
    };
    if (route.kind !== "put" && route.kind !== "batch" && hasBody(request)) throw badRequest("this request takes no body");
    switch (route.kind) {
      case "put":
        return this.secrets.put(identity, route.name, route.scope, putBody(request, await readJson()), context);
      case "get":
        return this.secrets.get(identity, route.name, route.version, context);
      case "delete":
        return this.secrets.delete(identity, route.name, context);
      case "list":
        return this.secrets.list(identity);
      case "batch":
        return this.secrets.batch(identity, batchBody(request, await readJson()), context);
      case "audit_list": {
        this.auth.requireAdmin(identity);
        const records = await this.store.auditRecords(route.after, route.limit);
        return { status: 200, body: { records, next: records.length ? records[records.length - 1].seq : route.after } };
      }
      case "audit_verify":
        this.auth.requireAdmin(identity);
        return { status: 200, body: await verifyAudit(this.store) };
    }
  }

  /** Every failure as the contract's error; the ones the client cannot explain are logged here, by name. */
  private failure(error: unknown, context: RequestContext): VaultError {
    if (error instanceof VaultError) return error;
    if (error instanceof StoreUnavailable) {
      this.log.error({ reason: error.message }, "store unavailable");
      return storeUnavailable();
    }
    if (error instanceof KekUnavailable) {
      this.log.error({ reason: error.message }, "KEK unavailable");
      return kekUnavailable();
    }
    if (error instanceof IntegrityError) {
      this.log.error({ name: context.name, version: context.version, reason: error.message }, "stored secret failed its integrity check");
      return integrityFailure(context.name ?? "(unknown)");
    }
    this.log.error({ error: (error as Error)?.name, reason: (error as Error)?.message }, "unexpected failure");
    return internalError();
  }
}

const COMMON_HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff" };

function send(response: ServerResponse, request: IncomingMessage, reply: Reply | undefined, failure: VaultError | undefined, bodyRead: boolean): void {
  if (failure) {
    const json = failure.body();
    // The rest of an unread body is not worth reading just to keep the connection open.
    const close = failure.status === 413 || (!bodyRead && hasBody(request));
    response.writeHead(failure.status, {
      ...COMMON_HEADERS,
      ...failure.headers,
      "content-type": "application/json",
      "content-length": Buffer.byteLength(json),
      ...(close ? { connection: "close" } : {}),
    });
    response.end(json);
    return;
  }
  if (reply!.status === 204) {
    // A 204 carries no content-length (RFC 9110), and Envoy holds upstreams to that.
    response.writeHead(204, COMMON_HEADERS);
    response.end();
    return;
  }
  const json = JSON.stringify(reply!.body);
  response.writeHead(reply!.status, { ...COMMON_HEADERS, "content-type": "application/json", "content-length": Buffer.byteLength(json) });
  response.end(json);
}
