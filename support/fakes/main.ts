// One cloud stand-in as a process of its own, for the local stack (stack/services.ts): the fake
// GCP STS and IAM Credentials (gcp.ts) or the fake Entra ID (azure.ts), configured by a JSON file.
//
//   node --import tsx support/fakes/main.ts --config FILE
//
// Prints `listening on http(s)://127.0.0.1:PORT` once it serves, and nothing per request (the
// requests carry tokens). SIGTERM or SIGINT stop it (exit 0); a bad config exits 2.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startAzureFake } from "./azure.ts";
import { startGcpFake } from "./gcp.ts";
import { resolverFor } from "./oidc-federation.ts";

interface FakeConfigBase {
  /** Loopback port to listen on. */
  port: number;
  /** The issuer the cloud's federation trusts (the injector's, e.g. https://oidc.hexr.cloud). */
  issuer: string;
  /** Where the issuer's discovery document and JWKS are really served: the injector's discovery listener. */
  issuer_served_at: string;
}

export interface GcpFakeConfig extends FakeConfigBase {
  cloud: "gcp";
  /** Service accounts the federated identities may impersonate. */
  service_accounts: string[];
}

export interface EntraFakeConfig extends FakeConfigBase {
  cloud: "entra";
  tenant_id: string;
  /** PEM files of its HTTPS certificate (MSAL refuses a plain-HTTP authority). */
  cert_file: string;
  key_file: string;
  /** Client ID → the subjects its federated credentials name (exact, or a prefix ending in `*`). */
  federated_subjects: Record<string, string[]>;
}

export type FakeCloudConfig = GcpFakeConfig | EntraFakeConfig;

interface RunningFake {
  url: string;
  close(): Promise<void>;
}

function start(config: FakeCloudConfig): Promise<RunningFake> {
  const issuer = { issuer: config.issuer, resolve: resolverFor(config.issuer, () => config.issuer_served_at) };
  switch (config.cloud) {
    case "gcp":
      return startGcpFake({ provider: issuer, serviceAccounts: config.service_accounts, port: config.port });
    case "entra":
      return startAzureFake({
        cert: readFileSync(config.cert_file, "utf8"),
        key: readFileSync(config.key_file, "utf8"),
        tenantId: config.tenant_id,
        issuer,
        federatedSubjects: config.federated_subjects,
        port: config.port,
      });
    default:
      throw new Error(`"cloud" must be "gcp" or "entra", not ${JSON.stringify((config as { cloud?: unknown }).cloud)}`);
  }
}

function readConfig(): FakeCloudConfig {
  const { values } = parseArgs({ options: { config: { type: "string" } } });
  if (!values.config) throw new Error("usage: support/fakes/main.ts --config FILE");
  return JSON.parse(readFileSync(values.config, "utf8")) as FakeCloudConfig;
}

async function main(): Promise<void> {
  const fake = await start(readConfig());
  console.log(`listening on ${fake.url}`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: Error) => {
  console.error(`fake cloud: ${error.message}`);
  process.exit(2);
});
