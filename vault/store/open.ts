// The store the config names: SQLite (a file) or PostgreSQL (a server).
import type { Logger } from "pino";
import type { StoreConfig } from "../config.ts";
import { openPostgresStore } from "./postgres.ts";
import { openSqliteStore } from "./sqlite.ts";
import type { VaultStore } from "./store.ts";

export async function openStore(config: StoreConfig, log: Logger): Promise<VaultStore> {
  if (config.engine === "sqlite") return openSqliteStore(config.path);
  return openPostgresStore(config, (error) => log.warn({ reason: error.message }, "PostgreSQL connection lost; the pool reconnects on the next request"));
}
