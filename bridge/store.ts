// The Valkey operations the bridge needs, each bounded by a deadline so a hung Valkey costs
// at most commandTimeoutMs before the caller gets 503. Values here are already-sealed blobs.
import type { Redis } from "iovalkey";
import { withDeadline } from "./deadline.ts";
import { ValkeyUnavailableError } from "./errors.ts";
import type { ValkeyConnection } from "./valkey-connection.ts";

const SCAN_BATCH = 500;

export interface BlobStore {
  get(key: string): Promise<Buffer | null>;
  set(key: string, blob: Buffer, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Deletes every key starting with `prefix` (which holds no glob metacharacters) on every master. */
  purge(prefix: string): Promise<number>;
  /** Resolves when every master answers PING. */
  ping(): Promise<void>;
}

export function createBlobStore(connection: ValkeyConnection, commandTimeoutMs: number): BlobStore {
  const { client } = connection;
  const bounded = <T>(operation: Promise<T>) => withDeadline(operation, commandTimeoutMs);

  const masters = (): Redis[] => {
    const nodes = connection.masters();
    if (nodes.length === 0) throw new ValkeyUnavailableError("cluster not ready");
    return nodes;
  };

  const purgeMaster = async (node: Redis, pattern: string): Promise<number> => {
    let cursor = "0";
    let deleted = 0;
    do {
      const [next, keys] = await bounded(node.scan(cursor, "MATCH", pattern, "COUNT", SCAN_BATCH));
      if (keys.length > 0) deleted += await bounded(deleteEach(node, keys));
      cursor = next;
    } while (cursor !== "0");
    return deleted;
  };

  return {
    get: (key) => bounded(client.getBuffer(key)),
    async set(key, blob, ttlMs) {
      await bounded(client.set(key, blob, "PX", ttlMs));
    },
    async delete(key) {
      await bounded(client.del(key));
    },
    async purge(prefix) {
      const counts = await Promise.all(masters().map((node) => purgeMaster(node, `${prefix}*`)));
      return counts.reduce((sum, n) => sum + n, 0);
    },
    async ping() {
      await Promise.all(masters().map((node) => bounded(node.ping())));
    },
  };
}

/** One DEL per key: on a cluster master the keys span many slots, and a multi-key DEL must stay within one. */
async function deleteEach(node: Redis, keys: string[]): Promise<number> {
  const replies = (await node.pipeline(keys.map((key) => ["del", key])).exec()) ?? [];
  let deleted = 0;
  for (const [error, count] of replies) {
    if (error) throw error;
    deleted += count as number;
  }
  return deleted;
}
