// The injector's HTTP(S) server: POST /exchange, GET /healthz, and the JSON error contract for
// everything else. With TLS configured it presents its own certificate and verifies the client's
// (the sidecar's X.509-SVID) against the configured CA bundle.
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { Authenticator } from "./auth/authenticate.ts";
import { CallerPolicy } from "./auth/caller.ts";
import { JwtSvidVerifier } from "./auth/jwt-svid.ts";
import { ServiceCatalog } from "./catalog.ts";
import { parseConfig, type InjectorConfig } from "./config.ts";
import { badRequest } from "./errors.ts";
import { ExchangeService, type Reply } from "./exchange-service.ts";
import { createLogger, type Logger } from "./log.ts";
import { OpaClient } from "./opa.ts";
import { createExchanges } from "./providers/index.ts";

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object | null ? DeepPartial<T[K]> | null : T[K] };

/** The config file's JSON shape; omitted fields take their defaults. */
export type InjectorConfigInput = DeepPartial<InjectorConfig>;

export interface StartOptions {
  /** Defaults to a pino logger on stdout at the configured level. */
  logger?: Logger;
  /** Relative file paths in the config are resolved against this (default: the working directory). */
  baseDir?: string;
}

export interface RunningInjector {
  port: number;
  /** e.g. https://127.0.0.1:8443 */
  url: string;
  config: InjectorConfig;
  close(): Promise<void>;
}

/** Envoy keeps upstream connections open; closing idle ones first would race its next request. */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;

export async function startInjector(input: InjectorConfigInput, options: StartOptions = {}): Promise<RunningInjector> {
  const config = parseConfig(input, options.baseDir);
  const logger = options.logger ?? createLogger(config.log_level);
  const opa = new OpaClient(config.opa.url, config.opa.decision_path, config.opa.timeout_ms);
  const exchanges = createExchanges(config);
  const service = new ExchangeService({
    config,
    catalog: new ServiceCatalog(config.extra_services),
    authenticator: new Authenticator(new JwtSvidVerifier(config.jwt, config.trust_domains), new CallerPolicy(config.caller_rules)),
    opa,
    exchanges,
    logger,
  });

  const server = createServer(config, (request, response) => void route(service, request, response));
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;

  return {
    port,
    url: `${config.tls ? "https" : "http"}://${host}:${port}`,
    config,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      opa.close();
      for (const exchange of exchanges.values()) exchange.close?.();
    },
  };
}

function createServer(config: InjectorConfig, listener: http.RequestListener): http.Server {
  if (!config.tls) return http.createServer(listener);
  const { cert_file, key_file, client_ca_file, require_client_cert } = config.tls;
  return https.createServer(
    {
      cert: readFileSync(cert_file),
      key: readFileSync(key_file),
      ca: client_ca_file ? readFileSync(client_ca_file) : undefined,
      requestCert: client_ca_file !== null,
      rejectUnauthorized: require_client_cert,
      minVersion: "TLSv1.2",
    },
    listener,
  );
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
