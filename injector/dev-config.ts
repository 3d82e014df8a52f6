// The configuration the local stack runs the injector with: injector/config.dev.json, pointed at
// the dev identity material (generated on first use) and at whatever ports the stack chose.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDevIdentity } from "../support/dev-identity.ts";
import { loadConfigFile, type InjectorConfig } from "./config.ts";

export const DEV_CONFIG_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), "config.dev.json");

export interface DevConfigOptions {
  /** Listen port (0 = any free port); default 15443. */
  port?: number;
  /** OPA base URL; default http://127.0.0.1:15181. */
  opaUrl?: string;
  /** AWS STS endpoint (moto); default http://127.0.0.1:15500. */
  stsEndpoint?: string;
  /** Dev identity folder; default .dev/ at the project root. */
  identityDir?: string;
  logLevel?: string;
}

export async function devInjectorConfig(options: DevConfigOptions = {}): Promise<InjectorConfig> {
  const identity = await ensureDevIdentity(options.identityDir);
  const config = loadConfigFile(DEV_CONFIG_FILE);
  config.listen.port = options.port ?? config.listen.port;
  config.tls = { cert_file: identity.injectorCert, key_file: identity.injectorKey, client_ca_file: identity.ca, require_client_cert: true };
  config.jwt.jwks_file = identity.jwks;
  config.opa.url = options.opaUrl ?? config.opa.url;
  if (config.aws) config.aws.sts_endpoint = options.stsEndpoint ?? config.aws.sts_endpoint;
  config.log_level = options.logLevel ?? config.log_level;
  return config;
}
