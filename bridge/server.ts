// startBridge(): the HTTP server in front of Valkey, as the CLI, the local stack and e2e tests run it.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { createValueCipher } from "./cipher.ts";
import { loadKeyFile } from "./keyfile.ts";
import { createExchangeLocks } from "./locks.ts";
import { createLogger } from "./log.ts";
import { createRevocationLog, revocationLogLimit } from "./revocation-log.ts";
import { createRequestHandler } from "./routes.ts";
import { createBlobStore } from "./store.ts";
import { connectValkey, type ValkeyNode, type ValkeyTarget } from "./valkey-connection.ts";
import { createVault } from "./vault.ts";

export const DEFAULT_COMMAND_TIMEOUT_MS = 250;
// Longer than the idle timeout of Envoy's connection pool should be, so the bridge never closes
// a pooled connection just as Envoy reuses it (see README).
const KEEP_ALIVE_TIMEOUT_MS = 5 * 60 * 1000;
// How long startup waits for Valkey before serving anyway (503 until Valkey appears).
const STARTUP_WAIT_MS = 3_000;

export interface BridgeOptions {
  /** Standalone Valkey, e.g. redis://127.0.0.1:6379. Exactly one of `valkey` and `cluster`. */
  valkey?: string;
  /** Seed nodes of a Valkey cluster. */
  cluster?: ValkeyNode[];
  /** AES-256 key file: 32 raw bytes, 64 hex characters or base64 of 32 bytes. */
  keyFile: string;
  /** 0 or absent: a free port chosen by the kernel. */
  port?: number;
  host?: string;
  /** Upper bound on every Valkey command; past it the request gets 503. */
  commandTimeoutMs?: number;
  /** How many revocations the log keeps (the newest); 10,000 unless a test wants to see trimming. */
  revocationLogLimit?: number;
  logger?: Logger;
}

export interface RunningBridge {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startBridge(options: BridgeOptions): Promise<RunningBridge> {
  const log = options.logger ?? createLogger();
  const cipher = createValueCipher(loadKeyFile(options.keyFile));
  const logLimit = revocationLogLimit(options.revocationLogLimit);
  const connection = connectValkey(valkeyTarget(options), log);
  if (!(await connection.whenReady(STARTUP_WAIT_MS))) {
    log.warn("valkey not ready yet; serving 503 until it is");
  }
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const store = createBlobStore(connection, commandTimeoutMs);
  const revocationLog = createRevocationLog(connection, commandTimeoutMs, logLimit);
  const locks = createExchangeLocks(connection, commandTimeoutMs);
  const handler = createRequestHandler(createVault(store, cipher, log), store, locks, revocationLog, log);
  const server = createServer({ keepAlive: true, noDelay: true }, handler);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  const host = options.host ?? "127.0.0.1";
  try {
    await listen(server, options.port ?? 0, host);
  } catch (error) {
    await connection.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await connection.close();
    },
  };
}

function valkeyTarget(options: BridgeOptions): ValkeyTarget {
  if (options.valkey && options.cluster?.length) throw new Error("give either a Valkey URL or cluster nodes, not both");
  if (options.valkey) return { url: options.valkey };
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
