// The cross-pod exchange lock of one credential: Valkey key `lock:{credential key}`, holding the
// holder's owner token in plain text. A lock guards one exchange, holds no secret and is never
// sealed, and it lives outside `cred:` so no purge or revocation (both `cred:` prefixes) touches it.
import type { Cluster, Redis } from "iovalkey";
import { lockKey } from "../contract/index.ts";
import { withDeadline } from "./deadline.ts";
import type { ValkeyConnection } from "./valkey-connection.ts";

// KEYS: the lock. ARGV: the owner token. Compare and delete in one step, so a holder whose lock
// expired and was taken by another pod cannot release the new holder's lock. One key, so it runs on
// the key's master in cluster mode.
const RELEASE_IF_OWNER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface ExchangeLocks {
  /** True when taken, false while another holder has it. `credential` is a credential key, not a lock key. */
  acquire(credential: string, owner: Buffer, ttlMs: number): Promise<boolean>;
  /** Releases the lock if `owner` holds it; with no owner, whoever holds it. */
  release(credential: string, owner?: Buffer): Promise<void>;
}

interface ScriptCommands {
  hexrReleaseLock(lock: string, owner: Buffer): Promise<number>;
}

export function createExchangeLocks(connection: ValkeyConnection, commandTimeoutMs: number): ExchangeLocks {
  const { client } = connection;
  const scripts = withScript(client);
  const bounded = <T>(operation: Promise<T>) => withDeadline(operation, commandTimeoutMs);
  return {
    async acquire(credential, owner, ttlMs) {
      return (await bounded(client.set(lockKey(credential), owner, "PX", ttlMs, "NX"))) === "OK";
    },
    async release(credential, owner) {
      const lock = lockKey(credential);
      await bounded(owner === undefined ? client.del(lock) : scripts.hexrReleaseLock(lock, owner));
    },
  };
}

/** EVALSHA once a connection has the script, EVAL before (and after Valkey lost its script cache). */
function withScript(client: Redis | Cluster): ScriptCommands {
  client.defineCommand("hexrReleaseLock", { lua: RELEASE_IF_OWNER, numberOfKeys: 1 });
  return client as unknown as ScriptCommands;
}
