// How each service behind the sidecar is started: the real binaries (Valkey, OPA, moto), the
// project's own services (bridge, injector) and the cloud stand-ins (GCP STS, Entra ID) as separate
// Node processes, exactly as they run alone.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { motoProcessSpec } from "../support/moto.ts";
import { ensureOpaToken, opaProcessSpec, type OpaAuthFiles } from "../support/opa.ts";
import { PROVIDERS, REGIONS, type Provider } from "../contract/index.ts";
import { valkeyProcessSpec, type ValkeyTlsFiles, type ValkeyUsers } from "../support/valkey.ts";
import { startProcess } from "../support/processes.ts";
import { projectRoot } from "../support/tools.ts";
import {
  DEFAULT_SIDECAR_SPIFFE_ID, DEV_AUDIENCE, DEV_ISSUER, DEV_TRUST_DOMAIN, INJECTOR_SPIFFE_ID, VAULT_SPIFFE_ID, type DevIdentityPaths,
} from "../support/dev-identity.ts";
import { GCP_AUDIENCE } from "../support/fakes/gcp.ts";
import type { EntraFakeConfig, FakeCloudConfig, GcpFakeConfig } from "../support/fakes/main.ts";
import { DEV_OIDC_ISSUER, devInjectorConfig, type DevConfigOptions } from "../injector/dev-config.ts";
import type { CallerRule, RevocationConfig, ServedRegions } from "../injector/config.ts";
import type { InjectorConfigInput } from "../injector/server.ts";
import type { TlsFiles } from "../bridge/index.ts";
import { createPart, type Part } from "./part.ts";

const LISTENING = /listening on https?:\/\//;

/** `node --import tsx script.ts ...`: one process (no tsx wrapper), so SIGTERM reaches the service itself. */
function typeScriptCommand(script: string, args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ["--import", "tsx", path.join(projectRoot, script), ...args] };
}

function logFileFor(logDir: string | undefined, name: string): string | undefined {
  return logDir ? path.join(logDir, `${name}.log`) : undefined;
}

/** Valkey with its ACL users (no command without AUTH); TLS only when `tls` is given. */
export function valkeyPart(options: { port: number; dataDir: string; users: ValkeyUsers; tls?: ValkeyTlsFiles; logDir?: string }): Part {
  const { port, dataDir, users, tls } = options;
  return createPart({
    name: "valkey",
    port,
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    logFile: logFileFor(options.logDir, "valkey"),
    launch: () => startProcess(valkeyProcessSpec(port, dataDir, { aclFile: users.aclFile, tls })),
  });
}

export interface BridgePartOptions {
  port: number;
  valkeyUrl: string;
  /** hexr-bridge's password file (valkeyUsers().bridge.passwordFile). */
  valkeyPasswordFile: string;
  /** With a rediss:// URL: the CA of Valkey's certificate. */
  valkeyTlsCa?: string;
  keyFile: string;
  /** The bridge's X.509-SVID and the trust bundle (the dev CA). */
  tls: TlsFiles;
  accessFile: string;
  /** Serve GET /metrics on this loopback port (--metrics-port); absent: off. */
  metricsPort?: number;
  logDir?: string;
}

/** The bridge on loopback, HTTPS only, callers restricted by its access file. */
export function bridgePart(options: BridgePartOptions): Part {
  const { command, args } = typeScriptCommand("bridge/main.ts", [
    "--port", String(options.port),
    "--tls-cert", options.tls.cert,
    "--tls-key", options.tls.key,
    "--trust-bundle", options.tls.trustBundle,
    "--access-file", options.accessFile,
    "--valkey", options.valkeyUrl,
    "--valkey-password-file", options.valkeyPasswordFile,
    ...(options.valkeyTlsCa ? ["--valkey-tls-ca", options.valkeyTlsCa] : []),
    "--key-file", options.keyFile,
    ...(options.metricsPort !== undefined ? ["--metrics-port", String(options.metricsPort)] : []),
  ]);
  return createPart({
    name: "bridge",
    port: options.port,
    url: `https://127.0.0.1:${options.port}`,
    logFile: logFileFor(options.logDir, "bridge"),
    launch: () => startProcess({ name: "bridge", command, args, cwd: projectRoot, ready: { logLine: LISTENING } }),
  });
}

export interface VaultPartOptions {
  port: number;
  /** The vault's X.509-SVID and the trust bundle callers' certificates must chain to. */
  tls: { cert: string; key: string; bundle: string };
  /** JWT-SVID keys: a JWKS file (the dev identity's, or hexr-svid-files') or SPIRE's OIDC discovery provider. */
  jwks: { file: string } | { url: string; refreshSeconds: number };
  /** Which sidecars may assert which tenants' identities. */
  callerRules: { spiffe_id: string; tenants: string[] }[];
  admins: string[];
  /** SQLite database and key-encryption key files live here (kept across restarts of the vault). */
  dataDir: string;
  configFile: string;
  /** Serve GET /metrics on this loopback port (the config's `metrics`); absent: off. */
  metricsPort?: number;
  logDir?: string;
}

/**
 * The vault's caller rule for the Credential Injector, in both identity modes (the dev identity's
 * injector certificate and SPIRE's entry for the injector's uid carry the same SPIFFE ID): it reads
 * llm_* API keys on an agent's behalf, for any tenant, as it mints any tenant's cloud credentials.
 * The scope it opens is the one the agent's own JWT-SVID names, which the vault verifies itself.
 */
export const VAULT_INJECTOR_CALLER_RULE = { spiffe_id: INJECTOR_SPIFFE_ID, tenants: ["*"] } as const;

/**
 * The stack's vault configuration (vault/README.md): the given callers plus the injector
 * (VAULT_INJECTOR_CALLER_RULE), the dev trust domain and JWT-SVID settings, SQLite and a generated
 * KEK file in `dataDir`. On `host`, default 127.0.0.1 (docker-compose's setup: 0.0.0.0).
 */
export function stackVaultConfig(options: Omit<VaultPartOptions, "configFile" | "logDir"> & { host?: string }) {
  return {
    listen: { host: options.host ?? "127.0.0.1", port: options.port },
    tls: { cert_file: options.tls.cert, key_file: options.tls.key, client_ca_file: options.tls.bundle },
    trust_domains: [DEV_TRUST_DOMAIN],
    caller_rules: [...options.callerRules, { ...VAULT_INJECTOR_CALLER_RULE, tenants: [...VAULT_INJECTOR_CALLER_RULE.tenants] }],
    jwt: {
      ...("file" in options.jwks ? { jwks_file: options.jwks.file } : { jwks_url: options.jwks.url, jwks_refresh_seconds: options.jwks.refreshSeconds }),
      audience: [DEV_AUDIENCE],
      issuer: DEV_ISSUER,
    },
    admins: options.admins,
    store: { engine: "sqlite", path: path.join(options.dataDir, "vault.sqlite3") },
    kek: { active: "kek-1", keys: [{ id: "kek-1", file: path.join(options.dataDir, "kek-1.key") }], generate_missing: true },
    ...(options.metricsPort !== undefined ? { metrics: { host: "127.0.0.1", port: options.metricsPort } } : {}),
  };
}

/** Hexr Vault on loopback (vault/): HTTPS, callers restricted by their certificates; SQLite and a key file. */
export function vaultPart(options: VaultPartOptions): Part {
  writeFileSync(options.configFile, JSON.stringify(stackVaultConfig(options), null, 2) + "\n");
  const { command, args } = typeScriptCommand("vault/main.ts", ["--config", options.configFile]);
  return createPart({
    name: "vault",
    port: options.port,
    url: `https://127.0.0.1:${options.port}`,
    logFile: logFileFor(options.logDir, "vault"),
    launch: () => startProcess({ name: "vault", command, args, cwd: projectRoot, ready: { logLine: LISTENING } }),
  });
}

export interface OpaPartOptions {
  port: number;
  /** The injector's token and OPA's hash of it (support/opa.ts ensureOpaToken): the API takes nothing else. */
  auth: OpaAuthFiles;
  /** More data files (the stack's load-test settings). */
  dataFiles?: string[];
  logDir?: string;
}

/** OPA on loopback with the project's policies, its API closed to all but the injector's token. */
export function opaPart(options: OpaPartOptions): Part {
  const { port, auth, dataFiles } = options;
  return createPart({
    name: "opa",
    port,
    url: `http://127.0.0.1:${port}`,
    logFile: logFileFor(options.logDir, "opa"),
    launch: () => startProcess(opaProcessSpec(port, { auth, dataFiles })),
  });
}

export function motoPart(port: number, logDir?: string): Part {
  return createPart({
    name: "moto",
    port,
    url: `http://127.0.0.1:${port}`,
    logFile: logFileFor(logDir, "moto"),
    launch: () => startProcess(motoProcessSpec(port, mkdtempSync(path.join(tmpdir(), "hexr-moto-")))),
  });
}

/** The stack's dev cloud accounts behind the stand-ins: one service account and one app registration per tenant. */
export const DEV_GCP_SERVICE_ACCOUNTS: Readonly<Record<string, string>> = {
  "acme-corp": "acme-corp-agents@hexr-dev.iam.gserviceaccount.com",
  globex: "globex-agents@hexr-dev.iam.gserviceaccount.com",
};
export const DEV_ENTRA_TENANT_ID = "9c5f2a1e-4b7d-4e8a-9f3c-2d6b8a1e7f40";
export const DEV_AZURE_CLIENT_IDS: Readonly<Record<string, string>> = {
  "acme-corp": "a1c3e5f7-0000-4000-8000-000000000001",
  globex: "a1c3e5f7-0000-4000-8000-000000000002",
};

export interface CloudFakes {
  gcpSts: GcpFakeConfig;
  entra: EntraFakeConfig;
  /** The injector's `gcp` and `azure` sections, pointed at them. */
  injectorGcp: NonNullable<InjectorConfigInput["gcp"]>;
  injectorAzure: NonNullable<InjectorConfigInput["azure"]>;
}

/**
 * GCP and Azure for the stack: the fake GCP STS and IAM Credentials and the fake Entra ID
 * (support/fakes/) trust the injector's issuer, whose keys they fetch from its discovery listener
 * on `ports.discovery`, as the real clouds fetch them from the issuer URL. Each tenant's agents
 * federate to the tenant's service account and app registration (its federated credential names
 * every agent of the tenant); OPA still decides who gets what.
 */
export function cloudFakes(input: { ports: { gcpSts: number; entra: number; discovery: number }; identity: DevIdentityPaths }): CloudFakes {
  const { ports, identity } = input;
  const issuer = { issuer: DEV_OIDC_ISSUER, issuer_served_at: `http://127.0.0.1:${ports.discovery}` };
  const gcpUrl = `http://127.0.0.1:${ports.gcpSts}`;
  return {
    gcpSts: { cloud: "gcp", port: ports.gcpSts, ...issuer, service_accounts: Object.values(DEV_GCP_SERVICE_ACCOUNTS) },
    entra: {
      cloud: "entra",
      port: ports.entra,
      ...issuer,
      tenant_id: DEV_ENTRA_TENANT_ID,
      // The dev CA's listener certificate (localhost, 127.0.0.1); the injector trusts the dev CA.
      cert_file: identity.listenerCert,
      key_file: identity.listenerKey,
      federated_subjects: Object.fromEntries(
        Object.entries(DEV_AZURE_CLIENT_IDS).map(([tenant, clientId]) => [clientId, [`spiffe://${DEV_TRUST_DOMAIN}/agent/${tenant}/*`]]),
      ),
    },
    injectorGcp: {
      sts_endpoint: `${gcpUrl}/v1/token`,
      iam_credentials_endpoint: gcpUrl,
      workload_identity_provider: GCP_AUDIENCE,
      service_accounts: DEV_GCP_SERVICE_ACCOUNTS,
    },
    injectorAzure: {
      authority_host: `https://127.0.0.1:${ports.entra}`,
      tenant_id: DEV_ENTRA_TENANT_ID,
      client_ids: DEV_AZURE_CLIENT_IDS,
      ca_file: identity.ca,
    },
  };
}

/** A cloud stand-in (support/fakes/main.ts) as a process of its own; its config is written to `configFile`. */
export function fakeCloudPart(options: { name: string; config: FakeCloudConfig; configFile: string; logDir?: string }): Part {
  const { name, config } = options;
  writeFileSync(options.configFile, JSON.stringify(config, null, 2) + "\n");
  const { command, args } = typeScriptCommand("support/fakes/main.ts", ["--config", options.configFile]);
  return createPart({
    name,
    port: config.port,
    url: `${config.cloud === "entra" ? "https" : "http"}://127.0.0.1:${config.port}`,
    logFile: logFileFor(options.logDir, name),
    launch: () => startProcess({ name, command, args, cwd: projectRoot, ready: { logLine: LISTENING } }),
  });
}

export interface InjectorPartOptions {
  port: number;
  opaUrl: string;
  /** The injector's OPA token (OpaAuthFiles.tokenFile). */
  opaTokenFile: string;
  stsEndpoint: string;
  /** Port of its OIDC discovery listener: where the cloud stand-ins fetch its keys. */
  discoveryPort: number;
  /** Its `gcp` and `azure` sections (CloudFakes); absent: that cloud is off. */
  gcp?: InjectorConfigInput["gcp"];
  azure?: InjectorConfigInput["azure"];
  /** Caller rules beyond the dev configuration's (PolicySetup.callerRules). */
  callerRules?: CallerRule[];
  identityDir: string;
  /** Where the rendered injector config is written. */
  configFile: string;
  /** The bridge whose revocation log it follows. */
  bridgeUrl: string;
  /** Changes to the dev revocation section; null: the injector does not follow revocations. */
  revocation: Partial<RevocationConfig> | null;
  /** The regions exchanges may name (default the contract's). */
  regions?: ServedRegions;
  /**
   * The stack's vault, when the vault part runs: the injector then reads llm_* API keys from it
   * (its `llm` section, with the injector's own SVID). Absent: llm_* exchanges are not configured (503).
   */
  vault?: { url: string; spiffeId?: string };
  /** Its identity from SPIRE (DevConfigOptions.svid, .jwks); default the dev identity's files. */
  svid?: DevConfigOptions["svid"];
  jwks?: DevConfigOptions["jwks"];
  /** Serve GET /metrics on this loopback port (the config's `metrics`); absent: off. */
  metricsPort?: number;
  logDir?: string;
}

/**
 * The injector's `llm` section for a stack's vault: llm_* API keys read from it as the agent, the
 * vault's certificate checked by its SPIFFE ID (default the dev one), with the injector's own SVID.
 */
export function injectorLlmSection(vault: { url: string; spiffeId?: string }): NonNullable<InjectorConfigInput["llm"]> {
  return { vault_url: vault.url, vault_spiffe_id: vault.spiffeId ?? VAULT_SPIFFE_ID };
}

/** The injector with its dev configuration (injector/config.dev.json) pointed at this stack. */
export async function injectorPart(options: InjectorPartOptions): Promise<Part> {
  const config = await devInjectorConfig({
    port: options.port,
    opaUrl: options.opaUrl,
    stsEndpoint: options.stsEndpoint,
    identityDir: options.identityDir,
    opaTokenFile: options.opaTokenFile,
    bridgeUrl: options.bridgeUrl,
    revocation: options.revocation,
    regions: options.regions,
    discoveryPort: options.discoveryPort,
    gcp: options.gcp,
    azure: options.azure,
    callerRules: options.callerRules,
    llm: options.vault ? injectorLlmSection(options.vault) : undefined,
    svid: options.svid,
    jwks: options.jwks,
  });
  if (options.metricsPort !== undefined) config.metrics = { host: "127.0.0.1", port: options.metricsPort };
  writeFileSync(options.configFile, JSON.stringify(config, null, 2) + "\n");
  const { command, args } = typeScriptCommand("injector/main.ts", ["--config", options.configFile]);
  return createPart({
    name: "injector",
    port: options.port,
    url: `https://127.0.0.1:${options.port}`,
    logFile: logFileFor(options.logDir, "injector"),
    launch: () => startProcess({ name: "injector", command, args, cwd: projectRoot, ready: { logLine: LISTENING } }),
  });
}

/**
 * How a stack's injector follows revocations: off (false), on with the dev settings (true), or on
 * with some of them changed (deny_seconds, poll_interval_ms, max_log_staleness_ms, ...).
 */
export type InjectorRevocationOption = boolean | Partial<RevocationConfig>;

export interface PolicySetup {
  /** The injector's OPA token (0600) and OPA's hash of it, in {runDir}/opa/. */
  opaAuth: OpaAuthFiles;
  /** OPA's extra data: the load-test lifting of the region allow-list, when the sidecars lift it. */
  opaDataFiles: string[];
  /** The injector's regions: the sidecars' (filter `regions`), so that both accept the same. */
  regions: ServedRegions;
  /** The injector's revocation changes, or null when it does not follow revocations. */
  revocation: Partial<RevocationConfig> | null;
  /** The injector's extra caller rules: the identities the dev sidecar may assert (its metadata listeners'). */
  callerRules: CallerRule[];
}

/** The OPA token of a stack's run directory (created once, kept across restarts of OPA and the injector). */
export function stackOpaAuth(runDir: string): OpaAuthFiles {
  return ensureOpaToken(path.join(runDir, "opa"));
}

/**
 * The OPA and injector side of a stack, derived from the filter configuration its sidecars run:
 * the same region allow-list (a load test's `regions: {"aws": "any"}` lifts it in the injector and,
 * through a data file, in OPA too), the OPA token, and the revocation settings.
 */
export function policySetup(input: {
  runDir: string;
  filterConfiguration: Record<string, unknown>;
  injectorRevocation?: InjectorRevocationOption;
  /** Agent SPIFFE IDs (exact, or a prefix ending in /*) the dev sidecar may assert without a JWT-SVID. */
  staticIdentities: readonly string[];
}): PolicySetup {
  const regions: Record<Provider, readonly string[] | "any"> = { ...REGIONS };
  const filterRegions = input.filterConfiguration.regions as Record<string, unknown> | null | undefined;
  for (const provider of PROVIDERS) {
    const value = filterRegions?.[provider];
    if (value === "any" || (Array.isArray(value) && value.every((region) => typeof region === "string"))) {
      regions[provider] = value as readonly string[] | "any";
    }
  }
  const opaAuth = stackOpaAuth(input.runDir);
  const unrestricted = PROVIDERS.filter((provider) => regions[provider] === "any");
  const opaDataFiles: string[] = [];
  if (unrestricted.length > 0) {
    const file = path.join(input.runDir, "opa", "load-test-regions.json");
    writeFileSync(file, JSON.stringify({ hexr: { unrestricted_regions: unrestricted } }) + "\n", { mode: 0o600 });
    opaDataFiles.push(file);
  }
  const option = input.injectorRevocation ?? true;
  const revocation = option === false ? null : {
    // A restarted injector keeps what it learned (its deny-list and epoch).
    state_file: path.join(input.runDir, "injector-revocations.json"),
    ...(option === true ? {} : option),
  };
  // No sidecar may assert an identity the injector's configuration does not list for it.
  const callerRules = input.staticIdentities.length === 0 ? [] : [
    { spiffe_id: DEFAULT_SIDECAR_SPIFFE_ID, tenants: [], static_identities: [...input.staticIdentities] },
  ];
  return { opaAuth, opaDataFiles, regions, revocation, callerRules };
}
