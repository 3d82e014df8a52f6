// npm run injector -- [--config FILE] [--port N] [--host ADDRESS]
// Runs the Credential Injector. The config comes from --config, else $HEXR_INJECTOR_CONFIG, else
// the local-stack dev config (injector/config.dev.json, with .dev/ identity material generated if
// missing). Prints "listening on URL" once ready; SIGTERM or SIGINT shut it down cleanly.
import { parseArgs } from "node:util";
import { ConfigError, loadConfigFile, type InjectorConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { startInjector } from "./server.ts";

function fail(message: string): never {
  process.stderr.write(`${message}\nusage: npm run injector -- [--config FILE] [--port N] [--host ADDRESS]\n`);
  process.exit(2);
}

async function loadConfig(file: string | undefined): Promise<InjectorConfig> {
  if (file) return loadConfigFile(file);
  const { devInjectorConfig } = await import("./dev-config.ts");
  return devInjectorConfig();
}

function applyOverrides(config: InjectorConfig, port: string | undefined, host: string | undefined): InjectorConfig {
  if (port !== undefined) {
    const parsed = Number(port);
    if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535) fail(`--port must be a port number, not ${port}`);
    config.listen.port = parsed;
  }
  if (host !== undefined) config.listen.host = host;
  return config;
}

async function main(): Promise<void> {
  let options;
  try {
    options = parseArgs({ options: { config: { type: "string" }, port: { type: "string" }, host: { type: "string" } } }).values;
  } catch (error) {
    fail((error as Error).message);
  }
  let injector;
  try {
    const config = applyOverrides(await loadConfig(options.config ?? process.env.HEXR_INJECTOR_CONFIG), options.port, options.host);
    injector = await startInjector(config);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  process.stdout.write(`listening on ${injector.url}\n`);
  if (injector.discoveryUrl) createLogger(injector.config.log_level).info({ url: injector.discoveryUrl }, "oidc discovery listening");
  if (injector.metricsUrl) createLogger(injector.config.log_level).info({ url: injector.metricsUrl }, "metrics listening");
  const shutDown = () => void injector.close().then(() => process.exit(0));
  process.once("SIGTERM", shutDown);
  process.once("SIGINT", shutDown);
}

await main();
