// npm run vault -- [--config FILE] [--port N] [--host ADDRESS]     serve
// npm run vault -- rotate-kek [--config FILE]                      re-wrap every data key under the active KEK
// npm run vault -- audit verify [--config FILE]                    check the audit chain (exit 1 when broken)
// npm run vault -- audit list [--config FILE] [--after SEQ] [--limit N]
//
// The config comes from --config, else $HEXR_VAULT_CONFIG. Serving prints "listening on URL" once
// ready (the only stdout line; logs go to stderr); SIGTERM or SIGINT shut it down cleanly, after the
// requests in flight. The other commands read the store directly (no server needed, and safe while
// one runs) and print JSON on stdout.
import { parseArgs } from "node:util";
import { verifyAudit } from "./audit.ts";
import { ConfigError, loadConfigFile, type VaultConfig } from "./config.ts";
import { checkKeyRing, loadKeyRing } from "./keys.ts";
import { createLogger } from "./log.ts";
import { rotateKek } from "./rotate.ts";
import { startVault } from "./server.ts";
import { openStore } from "./store/open.ts";

const USAGE = `usage: npm run vault -- [--config FILE] [--port N] [--host ADDRESS]
       npm run vault -- rotate-kek [--config FILE]
       npm run vault -- audit verify [--config FILE]
       npm run vault -- audit list [--config FILE] [--after SEQ] [--limit N]`;

function fail(message: string): never {
  process.stderr.write(`hexr-vault: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function loadConfig(file: string | undefined): VaultConfig {
  const path = file ?? process.env.HEXR_VAULT_CONFIG;
  if (!path) fail("no config: give --config FILE or set HEXR_VAULT_CONFIG");
  try {
    return loadConfigFile(path);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

function integer(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) fail(`--${name} must be an integer from ${min} to ${max}`);
  return parsed;
}

async function serve(options: { config?: string; port?: string; host?: string }): Promise<void> {
  const config = loadConfig(options.config);
  config.listen.port = integer(options.port, "port", config.listen.port, 0, 65535);
  if (options.host !== undefined) config.listen.host = options.host;
  const vault = await startVault(config).catch((error: Error) => fail(error.message));
  process.stdout.write(`listening on ${vault.url}\n`);
  if (vault.metricsUrl) createLogger(config.log_level).info({ url: vault.metricsUrl }, "metrics listening");
  const shutDown = () => {
    vault.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", shutDown);
  process.once("SIGINT", shutDown);
}

async function rotate(options: { config?: string }): Promise<void> {
  const config = loadConfig(options.config);
  const log = createLogger(config.log_level);
  const store = await openStore(config.store, log).catch((error: Error) => fail(error.message));
  try {
    const keyring = loadKeyRing(config.kek, log);
    try {
      await checkKeyRing(store, keyring, log);
      const result = await rotateKek(store, keyring, log);
      process.stdout.write(JSON.stringify(result) + "\n");
      process.exitCode = result.failed === 0 ? 0 : 1;
    } finally {
      keyring.close();
    }
  } catch (error) {
    process.stderr.write(`hexr-vault: rotate-kek failed: ${(error as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    await store.close();
  }
}

async function audit(action: string | undefined, options: { config?: string; after?: string; limit?: string }): Promise<void> {
  if (action !== "verify" && action !== "list") fail("audit takes verify or list");
  const config = loadConfig(options.config);
  const log = createLogger(config.log_level);
  const store = await openStore(config.store, log).catch((error: Error) => fail(error.message));
  try {
    if (action === "verify") {
      const result = await verifyAudit(store);
      process.stdout.write(JSON.stringify(result) + "\n");
      process.exitCode = result.ok ? 0 : 1;
    } else {
      const after = integer(options.after, "after", 0, 0, Number.MAX_SAFE_INTEGER);
      const limit = integer(options.limit, "limit", 1000, 1, 1_000_000);
      for (const record of await store.auditRecords(after, limit)) process.stdout.write(JSON.stringify(record) + "\n");
    }
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        config: { type: "string" }, port: { type: "string" }, host: { type: "string" },
        after: { type: "string" }, limit: { type: "string" },
      },
    });
  } catch (error) {
    fail((error as Error).message);
  }
  const [command, action, ...rest] = parsed.positionals;
  const { values } = parsed;
  if (command === undefined) {
    if (values.after !== undefined || values.limit !== undefined) fail("--after and --limit are for audit list");
    return serve(values);
  }
  if (command === "rotate-kek" && action === undefined) return rotate(values);
  if (command === "audit" && rest.length === 0) return audit(action, values);
  fail(`unknown command: ${parsed.positionals.join(" ")}`);
}

await main();
