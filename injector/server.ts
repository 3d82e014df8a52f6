// The injector's HTTP(S) server: POST /exchange, GET /healthz, and the JSON error contract for
// everything else. With TLS configured it presents its own certificate and verifies the client's
// (the sidecar's X.509-SVID) against the configured CA bundle. When `oidc.discovery_listen` is
// set, a second, plain-HTTP listener serves only the OIDC discovery document and the JWKS, which
// are public (see oidc/discovery.ts).
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { Authenticator } from "./auth/authenticate.ts";
import { CallerPolicy } from "./auth/caller.ts";
import { JwtSvidVerifier } from "../spiffe/jwt-svid.ts";
import { readTlsMaterial, watchTlsFiles } from "../spiffe/tls-files.ts";
import { ServiceCatalog } from "./catalog.ts";
import { parseConfig, type InjectorConfig } from "./config.ts";
import { badRequest, trustBundleUnavailable, unauthenticated } from "./errors.ts";
import { ExchangeService, type Reply } from "./exchange-service.ts";
import { createLogger, type Logger } from "./log.ts";
import { CloudTokenIssuer } from "./oidc/cloud-tokens.ts";
import { discoveryHandler } from "./oidc/discovery.ts";
import { SigningKeyStore } from "./oidc/signing-keys.ts";
import { OpaClient, readOpaToken } from "./opa.ts";
import { createExchanges } from "./providers/index.ts";
import { NO_REVOCATIONS, RevocationFollower } from "./revocations.ts";
import { createInjectorMetrics } from "./metrics.ts";
import { ServiceMetrics, type RunningMetrics } from "../service/metrics.ts";

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object | null ? DeepPartial<T[K]> | null : T[K] };

/** The config file's JSON shape; omitted fields take their defaults. */
export type InjectorConfigInput = DeepPartial<InjectorConfig>;

export interface StartOptions {
  /** Defaults to a pino logger on stdout at the configured level. */
  logger?: Logger;
  /** Relative file paths in the config are resolved against this (default: the working directory). */
  baseDir?: string;
  /** Epoch milliseconds for minting and key rotation (default Date.now); tests move it. */
  clock?: () => number;
}

export interface RunningInjector {
  port: number;
  /** e.g. https://127.0.0.1:8443 */
  url: string;
  config: InjectorConfig;
  /** e.g. http://127.0.0.1:8444: serves {issuer path}/.well-known/openid-configuration and the JWKS; null without oidc.discovery_listen. */
  discoveryUrl: string | null;
  /** The OIDC signing keys (rotate(), reload(), statuses(), jwks()); null without an oidc section. */
  signingKeys: SigningKeyStore | null;
  /** The deny-list learned from the bridge's revocation log; null without a revocation section. */
  revocations: RevocationFollower | null;
  /** e.g. http://127.0.0.1:9464/metrics: Prometheus text; null without a metrics section. */
  metricsUrl: string | null;
  close(): Promise<void>;
}

/** Envoy keeps upstream connections open; closing idle ones first would race its next request. */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;

export async function startInjector(input: InjectorConfigInput, options: StartOptions = {}): Promise<RunningInjector> {
  const config = parseConfig(input, options.baseDir);
  const logger = options.logger ?? createLogger(config.log_level);
  const clock = options.clock ?? Date.now;
  const signingKeys = config.oidc ? await SigningKeyStore.open(config.oidc, { clock, logger }) : null;
  const tokens = config.oidc && signingKeys ? new CloudTokenIssuer(config.oidc, signingKeys, clock) : noIssuer;
  const opaToken = config.opa.token_file ? readOpaToken(config.opa.token_file, logger) : null;
  const opa = new OpaClient(config.opa.url, config.opa.decision_path, config.opa.timeout_ms, opaToken);
  warnAboutRelaxations(config, logger);
  const revocations = config.revocation ? new RevocationFollower(config.revocation, logger, clock) : null;
  const exchanges = createExchanges(config, tokens, { logger, clock });
  const serviceMetrics = ServiceMetrics.create("hexr-credential-injector", config.metrics);
  const metrics = serviceMetrics.enabled ? createInjectorMetrics(serviceMetrics, clock) : undefined;
  if (metrics && revocations) metrics.follow(revocations);
  const service = new ExchangeService({
    config,
    catalog: new ServiceCatalog(config.extra_services),
    authenticator: new Authenticator(new JwtSvidVerifier(config.jwt, config.trust_domains, { rejected: unauthenticated, unavailable: trustBundleUnavailable }), new CallerPolicy(config.caller_rules)),
    opa,
    revocations: revocations ?? NO_REVOCATIONS,
    exchanges,
    logger,
    metrics,
  });

  const release = () => {
    revocations?.close();
    opa.close();
    for (const exchange of exchanges.values()) exchange.close?.();
  };
  let discovery: http.Server | null = null;
  let metricsServer: RunningMetrics | null = null;
  try {
    // One read of the log before serving (whatever its outcome: until a read succeeds, exchanges
    // are refused with 503), then it is followed every poll interval.
    await revocations?.start();
    if (config.oidc?.discovery_listen && signingKeys) {
      const handler = discoveryHandler(config.oidc, signingKeys);
      discovery = await listen(http.createServer((request, response) => void handler(request, response)), config.oidc.discovery_listen);
    }
    metricsServer = await serviceMetrics.serve();
    const { server, stopWatching } = createServer(config, (request, response) => void route(service, request, response), logger);
    server.once("close", stopWatching);
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 5_000;
    await listen(server, config.listen);
    const discoveryServer = discovery;
    const metricsListener = metricsServer;
    return {
      port: (server.address() as AddressInfo).port,
      url: urlOf(server, config.listen.host, config.tls ? "https" : "http"),
      config,
      discoveryUrl: discoveryServer && config.oidc?.discovery_listen ? urlOf(discoveryServer, config.oidc.discovery_listen.host, "http") : null,
      signingKeys,
      revocations,
      metricsUrl: metricsListener?.url ?? null,
      async close() {
        await Promise.all([stop(server), discoveryServer && stop(discoveryServer), metricsListener?.close()]);
        release();
      },
    };
  } catch (error) {
    if (discovery) await stop(discovery);
    await metricsServer?.close();
    release();
    throw error;
  }
}

/** Settings that trade safety for convenience are said out loud once, at start. */
function warnAboutRelaxations(config: ReturnType<typeof parseConfig>, logger: Logger): void {
  if (!config.revocation) {
    logger.warn("revocation is not configured: revoked identities are exchanged again (set revocation.bridge_url)");
  }
  for (const [provider, served] of Object.entries(config.regions)) {
    if (served === "any") logger.warn({ provider }, `regions.${provider} is "any": every region of the grammar is accepted (load tests only)`);
  }
  if (!config.opa.token_file) logger.warn("opa.token_file is not set: decisions are asked without a token");
}

/** Without an oidc section no cloud exchange is configured (parseConfig insists), so nothing mints. */
const noIssuer = {
  mint(): Promise<string> {
    return Promise.reject(new Error("no OIDC issuer is configured"));
  },
};

async function listen<T extends http.Server>(server: T, address: { host: string; port: number }): Promise<T> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}

function stop(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

function urlOf(server: http.Server, host: string, scheme: string): string {
  const { port } = server.address() as AddressInfo;
  return `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Below SPIRE's rotation (at half an X.509-SVID's lifetime) by far: a rotated SVID is served within this. */
const TLS_RELOAD_INTERVAL_MS = 30_000;

/** HTTPS with the injector's X.509-SVID, read again whenever SPIRE (or hexr-svid-files) rotates it. */
function createServer(config: InjectorConfig, listener: http.RequestListener, logger: Logger): { server: http.Server; stopWatching: () => void } {
  if (!config.tls) return { server: http.createServer(listener), stopWatching: () => {} };
  const { cert_file, key_file, client_ca_file, require_client_cert } = config.tls;
  const files = client_ca_file ? { cert: cert_file, key: key_file, trustBundle: client_ca_file } : null;
  const material = files ? readTlsMaterial(files) : { cert: readFileSync(cert_file), key: readFileSync(key_file) };
  const server = https.createServer(
    { ...material, requestCert: files !== null, rejectUnauthorized: require_client_cert, minVersion: "TLSv1.2" },
    listener,
  );
  const stopWatching = files
    ? watchTlsFiles(files, (fresh) => server.setSecureContext({ ...fresh, minVersion: "TLSv1.2" }), logger, TLS_RELOAD_INTERVAL_MS)
    : () => {};
  return { server, stopWatching };
}

async function route(service: ExchangeService, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? "/").split("?")[0];
  if (path === "/exchange") return send(response, await service.handle(request));
  if (path === "/healthz" && request.method === "GET") {
    return send(response, { status: 200, headers: { "content-type": "application/json" }, body: '{"status":"ok"}' });
  }
  const notFound = badRequest("no such endpoint: use POST /exchange", 404);
  send(response, { status: 404, headers: { "content-type": "application/json" }, body: notFound.body() });
}

function send(response: ServerResponse, reply: Reply): void {
  response.writeHead(reply.status, { ...reply.headers, "content-length": Buffer.byteLength(reply.body) });
  response.end(reply.body);
}
