// The revocation log every sidecar polls: a counter (the epoch) and a sorted set of revoked prefixes,
// score = the epoch of the revocation, member = "{epoch}|{prefix}", trimmed to the newest entries.
// Both keys carry the hash tag {hexr-revocations}, so in cluster mode they share a slot and each
// operation runs as one Lua script: an epoch is never visible without its entry, and a reader
// never sees an epoch newer than the entries it got.
import type { Cluster, Redis } from "iovalkey";
import { withDeadline } from "./deadline.ts";
import type { ValkeyConnection } from "./valkey-connection.ts";

export const EPOCH_KEY = "{hexr-revocations}:epoch";
export const LOG_KEY = "{hexr-revocations}:log";
export const DEFAULT_REVOCATION_LOG_LIMIT = 10_000;

// KEYS: epoch, log. ARGV: prefix, how many entries to keep. Returns the new epoch.
const RECORD = `
local epoch = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], epoch, epoch .. '|' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[2]))
return epoch
`;

// KEYS: epoch, log. ARGV: since (-1 = the epoch only). Returns {epoch, {member, ...}, gap} in epoch
// order; gap is 1 when revocations after \`since\` are no longer in the log (trimmed, or lost with
// Valkey's data): the reader cannot know what they revoked.
const READ = `
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
if since < 0 then return {epoch, {}, 0} end
local members = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
local gap = 0
if epoch < since then
  gap = 1
elseif epoch > since then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #oldest == 0 or tonumber(oldest[2]) > since + 1 then gap = 1 end
end
return {epoch, members, gap}
`;

export interface Revocations {
  /** The current epoch (0 before the first revocation). */
  epoch: number;
  /** Prefixes revoked after `since`, oldest first. */
  prefixes: string[];
  /** Some revocations after `since` are no longer in the log: the reader must assume the worst. */
  gap: boolean;
}

export interface RevocationLog {
  /** Appends `prefix` under a new epoch, trims the log, and resolves with that epoch. */
  record(prefix: string): Promise<number>;
  /** The current epoch and every prefix revoked at an epoch above `since`; `since` = -1 gives the epoch only. */
  since(since: number): Promise<Revocations>;
}

interface ScriptCommands {
  hexrRecordRevocation(epochKey: string, logKey: string, prefix: string, keep: number): Promise<number>;
  hexrReadRevocations(epochKey: string, logKey: string, since: number): Promise<[number, string[], number]>;
}

/** The option as given, or the default; throws on anything but a positive integer. */
export function revocationLogLimit(limit = DEFAULT_REVOCATION_LOG_LIMIT): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new Error("the revocation log limit must be a positive integer");
  return limit;
}

/** `limit`: how many of the newest entries the log keeps. */
export function createRevocationLog(connection: ValkeyConnection, commandTimeoutMs: number, limit: number): RevocationLog {
  const client = withScripts(connection.client);
  const bounded = <T>(operation: Promise<T>) => withDeadline(operation, commandTimeoutMs);
  return {
    record: (prefix) => bounded(client.hexrRecordRevocation(EPOCH_KEY, LOG_KEY, prefix, limit)),
    async since(since) {
      const [epoch, members, gap] = await bounded(client.hexrReadRevocations(EPOCH_KEY, LOG_KEY, since));
      return { epoch, prefixes: members.map((member) => member.slice(member.indexOf("|") + 1)), gap: gap === 1 };
    },
  };
}

/** EVALSHA once a connection has the script, EVAL before (and after Valkey lost its script cache). */
function withScripts(client: Redis | Cluster): ScriptCommands {
  client.defineCommand("hexrRecordRevocation", { lua: RECORD, numberOfKeys: 2 });
  client.defineCommand("hexrReadRevocations", { lua: READ, numberOfKeys: 2 });
  return client as unknown as ScriptCommands;
}
