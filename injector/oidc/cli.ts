// The injector's OIDC issuer from the shell: write the discovery documents for publishing, add a
// signing key, list the keys. The config is the injector's own (--config FILE, else
// $HEXR_INJECTOR_CONFIG, else the dev configuration), so the CLI sees the same folder and issuer.
//
//   npx tsx injector/oidc/cli.ts publish --out DIR [--config FILE]
//   npx tsx injector/oidc/cli.ts rotate [--publish-ahead SECONDS] [--config FILE]
//   npx tsx injector/oidc/cli.ts keys [--config FILE]
//
// Nothing printed is secret: file names, key IDs, times.
import { mkdir } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConfigError, loadConfigFile, type InjectorConfig, type OidcConfig } from "../config.ts";
import { writeDiscoveryDocuments } from "./discovery.ts";
import { JWKS_MAX_AGE_SECONDS, SigningKeyStore } from "./signing-keys.ts";

const USAGE = "usage: tsx injector/oidc/cli.ts publish --out DIR | rotate [--publish-ahead SECONDS] | keys   [--config FILE]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

async function loadConfig(file: string | undefined): Promise<InjectorConfig> {
  if (file) return loadConfigFile(file);
  const { devInjectorConfig } = await import("../dev-config.ts");
  return devInjectorConfig();
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { config: { type: "string" }, out: { type: "string" }, "publish-ahead": { type: "string" } },
    });
  } catch (error) {
    fail((error as Error).message);
  }
  const [command, ...rest] = parsed.positionals;
  if (rest.length > 0 || !["publish", "rotate", "keys"].includes(command)) fail(`unknown command: ${parsed.positionals.join(" ") || "(none)"}`);
  const { values } = parsed;

  let oidc: OidcConfig;
  try {
    const config = await loadConfig(values.config ?? process.env.HEXR_INJECTOR_CONFIG);
    if (!config.oidc) fail("the configuration has no oidc section");
    oidc = config.oidc;
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }

  try {
    if (command === "publish") {
      if (!values.out) fail("publish needs --out DIR");
      const keys = await SigningKeyStore.open({ ...oidc, generate_key: false });
      for (const file of await writeDiscoveryDocuments(oidc, keys, values.out)) process.stdout.write(`${file}\n`);
    } else if (command === "rotate") {
      const ahead = values["publish-ahead"] === undefined ? JWKS_MAX_AGE_SECONDS : Number(values["publish-ahead"]);
      if (!Number.isInteger(ahead) || ahead < 0) fail(`--publish-ahead must be a whole number of seconds, not ${values["publish-ahead"]}`);
      await mkdir(oidc.signing_keys_dir, { recursive: true, mode: 0o700 });
      const keys = await SigningKeyStore.open({ ...oidc, generate_key: false }, { requireActiveKey: false });
      const added = await keys.rotate({ publishAheadSeconds: ahead });
      process.stdout.write(`${JSON.stringify({ kid: added.kid, file: added.file, activates_at: new Date(added.activatesAt * 1000).toISOString() })}\n`);
    } else {
      const keys = await SigningKeyStore.open({ ...oidc, generate_key: false }, { requireActiveKey: false });
      for (const status of keys.statuses()) {
        const unpublish = status.unpublishAt === undefined ? {} : { unpublish_at: new Date(status.unpublishAt * 1000).toISOString() };
        process.stdout.write(`${JSON.stringify({ kid: status.kid, file: status.file, state: status.state, published: status.published, activates_at: new Date(status.activatesAt * 1000).toISOString(), ...unpublish })}\n`);
      }
    }
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

await main();
