// startBridge(): the HTTPS server in front of Valkey, as the CLI, the local stack and e2e tests run it.
// Every connection is TLS; every route but /healthz needs a client certificate from the trust
// bundle whose SPIFFE ID the access file names (auth/access.ts). Valkey is reached as an ACL user.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { createAccessControl } from "./auth/access.ts";
import { loadAccessFile, parseAccessConfig, type AccessConfig } from "./auth/access-config.ts";
import { createValueCipher } from "./cipher.ts";
import { loadKeyFile } from "./keyfile.ts";
import { createExchangeLocks } from "./locks.ts";
import { createLogger } from "./log.ts";
import { createRevocationLog, revocationLogLimit } from "./revocation-log.ts";
import { createRequestHandler } from "./routes.ts";
import { createBlobStore } from "./store.ts";
import { readTlsMaterial, watchTlsFiles, type TlsFiles } from "../spiffe/tls-files.ts";
import { connectValkey, type ValkeyCredentials, type ValkeyNode, type ValkeyTarget } from "./valkey-connection.ts";
import { loadValkeyPassword, refuseUrlCredentials } from "./valkey-password.ts";
import { createVault } from "./vault.ts";
import { createBridgeMetrics } from "./metrics.ts";
import { ServiceMetrics, type MetricsListen, type RunningMetrics } from "../service/metrics.ts";

export const DEFAULT_COMMAND_TIMEOUT_MS = 250;
export const DEFAULT_VALKEY_USER = "hexr-bridge";
// Longer than the idle timeout of Envoy's connection pool should be, so the bridge never closes
// a pooled connection just as Envoy reuses it (see README).
const KEEP_ALIVE_TIMEOUT_MS = 5 * 60 * 1000;
// How long startup waits for Valkey before serving anyway (503 until Valkey appears).
const STARTUP_WAIT_MS = 3_000;
// A client that opens a connection and never finishes the handshake is dropped after this.
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface BridgeOptions {
  /** Standalone Valkey, e.g. redis://127.0.0.1:6379 (rediss:// with valkeyTlsCa). Exactly one of `valkey` and `cluster`. */
  valkey?: string;
  /** Seed nodes of a Valkey cluster. */
  cluster?: ValkeyNode[];
  /** Valkey ACL user; default hexr-bridge. */
  valkeyUser?: string;
  /** File holding that user's password (one line). */
  valkeyPasswordFile: string;
  /** TLS to Valkey: the CA its certificates chain to. The bridge presents `tls.cert` as its client certificate. */
  valkeyTlsCa?: string;
  /** AES-256 key file: 32 raw bytes, 64 hex characters or base64 of 32 bytes. */
  keyFile: string;
  /** The bridge's X.509-SVID and the trust bundle callers' certificates must chain to (PEM files, re-read on change). */
  tls: TlsFiles;
  /** Who may call and for what: an access file (bridge/README.md), or its parsed content. */
  access: string | AccessConfig;
  /** 0 or absent: a free port chosen by the kernel. */
  port?: number;
  host?: string;
  /** Upper bound on every Valkey command; past it the request gets 503. */
  commandTimeoutMs?: number;
  /** How many revocations the log keeps (the newest); 10,000 unless a test wants to see trimming. */
  revocationLogLimit?: number;
  /** How often the TLS files are checked for a change; default 30 s. */
  tlsReloadIntervalMs?: number;
  /** A plain-HTTP listener serving only GET /metrics (Prometheus text); absent: none. */
  metrics?: MetricsListen;
  logger?: Logger;
}

export interface RunningBridge {
  port: number;
  /** https://HOST:PORT */
  url: string;
  /** http://HOST:PORT/metrics, or null without `metrics`. */
  metricsUrl: string | null;
  close(): Promise<void>;
}

export async function startBridge(options: BridgeOptions): Promise<RunningBridge> {
  const log = options.logger ?? createLogger();
  const cipher = createValueCipher(loadKeyFile(options.keyFile));
  const logLimit = revocationLogLimit(options.revocationLogLimit);
  const tls = readTlsMaterial(options.tls);
  const accessConfig = typeof options.access === "string" ? loadAccessFile(options.access) : parseAccessConfig(options.access);
  const access = createAccessControl(accessConfig, log);
  const target = valkeyTarget(options);
  const credentials: ValkeyCredentials = {
    username: options.valkeyUser ?? DEFAULT_VALKEY_USER,
    password: loadValkeyPassword(options.valkeyPasswordFile, log),
    ...(options.valkeyTlsCa ? { tls: { ca: readCa(options.valkeyTlsCa), cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" as const } } : {}),
  };
  const connection = connectValkey(target, credentials, log);
  if (!(await connection.whenReady(STARTUP_WAIT_MS))) {
    log.warn("valkey not ready yet; serving 503 until it is");
  }
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const store = createBlobStore(connection, commandTimeoutMs);
  const revocationLog = createRevocationLog(connection, commandTimeoutMs, logLimit);
  const locks = createExchangeLocks(connection, commandTimeoutMs);
  const serviceMetrics = ServiceMetrics.create("hexr-bridge", options.metrics ?? null);
  const handler = createRequestHandler(createVault(store, cipher, log), store, locks, revocationLog, access, log, createBridgeMetrics(serviceMetrics));
  const server = createServer(
    {
      ...tls,
      // Ask every client for its certificate, and let the handshake finish without one so that
      // /healthz stays reachable; every other route refuses such a connection with 401.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.2",
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      keepAlive: true,
      noDelay: true,
    },
    handler,
  );
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  const stopWatching = watchTlsFiles(
    options.tls,
    (fresh) => {
      server.setSecureContext({ ...fresh });
      // Valkey reconnects read these fields again (the client keeps this object).
      if (credentials.tls) Object.assign(credentials.tls, { cert: fresh.cert, key: fresh.key });
    },
    log,
    options.tlsReloadIntervalMs,
  );
  const host = options.host ?? "127.0.0.1";
  let metricsServer: RunningMetrics | null = null;
  try {
    metricsServer = await serviceMetrics.serve();
    await listen(server, options.port ?? 0, host);
  } catch (error) {
    stopWatching();
    await metricsServer?.close();
    await connection.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    metricsUrl: metricsServer?.url ?? null,
    async close() {
      stopWatching();
      await metricsServer?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await connection.close();
    },
  };
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch {
    throw new Error(`Valkey TLS CA file ${file} cannot be read`);
  }
}

function valkeyTarget(options: BridgeOptions): ValkeyTarget {
  if (options.valkey && options.cluster?.length) throw new Error("give either a Valkey URL or cluster nodes, not both");
  if (options.valkey) {
    refuseUrlCredentials(options.valkey);
    const tlsUrl = options.valkey.startsWith("rediss://");
    if (tlsUrl !== Boolean(options.valkeyTlsCa)) {
      throw new Error("a rediss:// Valkey URL and a Valkey TLS CA go together: give both, or neither");
    }
    return { url: options.valkey };
  }
  if (options.cluster?.length) return { cluster: options.cluster };
  throw new Error("no Valkey given: a URL (standalone) or cluster nodes are required");
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
