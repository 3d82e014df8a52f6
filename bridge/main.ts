// CLI: `tsx bridge/main.ts --tls-cert ... --tls-key ... --trust-bundle ... --access-file ...
//        --valkey redis://127.0.0.1:6379 --valkey-password-file ... --key-file .dev/bridge.key`.
// Prints exactly one stdout line, `listening on https://HOST:PORT`, once it serves.
import { parseCliOptions, USAGE, type CliOptions } from "./cli-options.ts";
import { ensureDevKeyFile } from "./keyfile.ts";
import { startBridge } from "./server.ts";

async function main(): Promise<void> {
  const { createKeyFile, ...bridgeOptions } = optionsOrExit();
  if (createKeyFile) ensureDevKeyFile(bridgeOptions.keyFile);
  const bridge = await startBridge(bridgeOptions).catch((error: Error) => fail(error.message));
  console.log(`listening on ${bridge.url}`);
  if (bridge.metricsUrl) console.error(`hexr-bridge: metrics on ${bridge.metricsUrl}`);

  const shutdown = () => {
    bridge.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

function optionsOrExit(): CliOptions {
  try {
    return parseCliOptions(process.argv.slice(2), process.env);
  } catch (error) {
    return fail(`${(error as Error).message}\n${USAGE}`);
  }
}

function fail(message: string): never {
  console.error(`hexr-bridge: ${message}`);
  process.exit(2);
}

await main();
