// One iovalkey client per bridge, standalone or cluster, tuned so that a dead or hung Valkey
// turns into a quick 503 and the client reconnects on its own when Valkey comes back.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "iovalkey";
import type { Logger } from "pino";
import { throttledErrorLog } from "./throttled-log.ts";

export interface ValkeyNode {
  host: string;
  port: number;
}

export type ValkeyTarget = { url: string } | { cluster: ValkeyNode[] };

/** How the bridge proves itself to Valkey: an ACL user, and TLS when the deployment asks for it. */
export interface ValkeyCredentials {
  username: string;
  password: string;
  /**
   * TLS to every node: the CA the servers' certificates chain to, and the bridge's own certificate
   * as the client's. The client keeps this very object and reads it on every (re)connect, so
   * changing its fields rotates the client certificate.
   */
  tls?: { ca: Buffer; cert: Buffer; key: Buffer; minVersion: "TLSv1.2" | "TLSv1.3" };
}

export interface ValkeyConnection {
  /** Routes single-key commands (to the right master in cluster mode). */
  readonly client: Redis | Cluster;
  /** Every master: SCAN and PING have to visit each one. Empty while a cluster is not ready. */
  masters(): Redis[];
  /** Resolves true once ready, false if not ready within timeoutMs (the client keeps trying). */
  whenReady(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

// Reconnect quickly and forever: the bridge is useless without Valkey, and the filter falls back to L3 meanwhile.
const reconnectDelay = (attempt: number) => Math.min(attempt * 50, 500);

const COMMON: RedisOptions = {
  // Fail at once instead of queueing while disconnected: a queued L2 read is worth less than a fast miss.
  enableOfflineQueue: false,
  // Commands in flight when the connection drops fail immediately and are never replayed later.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  connectTimeout: 1_000,
  // Concurrent requests share one write and one round trip.
  enableAutoPipelining: true,
};

export function connectValkey(target: ValkeyTarget, credentials: ValkeyCredentials, log: Logger): ValkeyConnection {
  const perNode: RedisOptions = {
    ...COMMON,
    username: credentials.username,
    password: credentials.password,
    ...(credentials.tls ? { tls: credentials.tls } : {}),
  };
  const client = "url" in target ? standalone(target.url, perNode) : cluster(target.cluster, perNode);
  reportConnectionState(client, log);
  return {
    client,
    masters: () => {
      if (!(client instanceof Cluster)) return [client];
      return client.status === "ready" ? client.nodes("master") : [];
    },
    whenReady: (timeoutMs) => whenReady(client, timeoutMs),
    async close() {
      try {
        await Promise.race([client.quit(), new Promise((_, reject) => setTimeout(reject, 1_000).unref())]);
      } catch {
        client.disconnect(); // Valkey is gone or slow: no goodbye needed
      }
    },
  };
}

function standalone(url: string, options: RedisOptions): Redis {
  return new Redis(url, { ...options, retryStrategy: reconnectDelay });
}

function cluster(nodes: ValkeyNode[], options: RedisOptions): Cluster {
  const { enableOfflineQueue, enableAutoPipelining, ...perNode } = options;
  const clusterOptions: ClusterOptions = {
    enableOfflineQueue,
    enableAutoPipelining,
    clusterRetryStrategy: reconnectDelay,
    redisOptions: perNode,
  };
  return new Cluster(nodes, clusterOptions);
}

function whenReady(client: Redis | Cluster, timeoutMs: number): Promise<boolean> {
  if (client.status === "ready") return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      resolve(false);
    }, timeoutMs);
    client.once("ready", onReady);
  });
}

function reportConnectionState(client: Redis | Cluster, log: Logger): void {
  const logError = throttledErrorLog(log);
  // Listening is also what stops iovalkey from printing "Unhandled error event" on every reconnect attempt.
  client.on("error", (error: Error) => logError({ reason: error.message }, "valkey unreachable"));
  client.on("node error", (error: Error, address: string) =>
    logError({ reason: error.message, node: address }, "valkey cluster node unreachable"),
  );
  client.on("ready", () => log.info("valkey ready"));
}
