// The docker-compose flavour of the stack: the same Envoy template and filter configuration as
// the native stack, rendered with the services' compose names and the paths the containers mount.
// docker-compose.yml runs stack/compose-setup.ts once to write them; e2e/compose.test.ts checks
// that the two stay consistent.
import path from "node:path";
import { BRIDGE_SPIFFE_ID, DEV_AUDIENCE, DEV_ISSUER, DEV_TRUST_DOMAIN, INJECTOR_SPIFFE_ID, VAULT_SPIFFE_ID } from "../support/dev-identity.ts";
import { DEFAULT_PORTS, LLM_EMULATOR_PORT, llmEmulatorProviders } from "./defaults.ts";
import { stackFilterConfiguration } from "./index.ts";
import { loadLlmSection, renderSidecarConfig, type FilterConfiguration, type SidecarValues } from "./render.ts";

/** Where the project is mounted in the Node containers (setup, bridge, injector, vault, llm-provider). */
export const APP_DIR = "/app";
/** Written by the setup service, relative to the project root. */
export const RENDERED_DIR = ".run/compose";

/** What the Envoy container mounts, and where (docker-compose.yml must agree). */
export const ENVOY_MOUNTS = {
  identity: { host: "./.dev", container: "/etc/hexr/identity" },
  wasm: { host: "./build", container: "/etc/hexr/wasm" },
  rendered: { host: `./${RENDERED_DIR}`, container: "/etc/hexr/rendered" },
} as const;

export const ENVOY_CONFIG_IN_CONTAINER = `${ENVOY_MOUNTS.rendered.container}/envoy.yaml`;

/**
 * Envoy's admin in the container: a Unix socket (mode 0600) on the container's own filesystem,
 * mounted nowhere else, so only a process inside the Envoy container reaches it; the stats
 * listener is what is published.
 */
export const ENVOY_ADMIN_SOCKET_IN_CONTAINER = "/tmp/envoy-admin.sock";

/**
 * The bridge's and Valkey's files, relative to the project root (the bridge container's working
 * directory): written by the setup service, named in docker-compose.yml's commands.
 */
export const BRIDGE_FILES = {
  keyFile: ".dev/l2-bridge.key",
  tlsCert: ".dev/svids/bridge.pem",
  tlsKey: ".dev/svids/bridge-key.pem",
  trustBundle: ".dev/ca.pem",
  accessFile: `${RENDERED_DIR}/bridge-access.json`,
  valkeyUsersDir: ".dev/valkey",
  valkeyPasswordFile: ".dev/valkey/hexr-bridge.password",
  valkeyAclFile: ".dev/valkey/users.acl",
} as const;

/** Where the valkey container mounts the ACL file. */
export const VALKEY_ACL_IN_CONTAINER = "/etc/valkey/users.acl";

/**
 * OPA's files (support/opa.ts ensureOpaToken), written by the setup service: the injector's token
 * (0600, read by the injector container only, as its opa.token_file) and its SHA-256 for OPA (0644:
 * the OPA image runs as its own user; it holds only a hash). Relative to the project root.
 */
export const OPA_FILES = {
  dir: ".dev/opa",
  tokenFile: ".dev/opa/opa-token",
  authzDataFile: ".dev/opa/opa-authz.json",
} as const;

/** Where the opa container mounts the policies, the token's hash and the shared contract. */
export const OPA_IN_CONTAINER = {
  policyDir: "/policy",
  authzDataFile: "/etc/opa/opa-authz.json",
  contractFile: "/contract/contract.json",
} as const;

/** Compose service names, which are also their host names on the compose network. */
export const SERVICES = {
  injector: "injector", bridge: "bridge", opa: "opa", moto: "moto", valkey: "valkey", vault: "vault", llmProvider: "llm-provider",
} as const;

/**
 * Hexr Vault's files: its configuration (written by setup, relative paths in it relative to its own
 * directory) and its X.509-SVID (svids/vault.pem: the dev CA's, URI SAN VAULT_SPIFFE_ID, DNS
 * `vault`), relative to the project root; its SQLite store and KEK file in a named volume that
 * only the vault container mounts (not the working tree, which every project container mounts).
 */
export const VAULT_FILES = {
  configFile: `${RENDERED_DIR}/vault.json`,
  tlsCert: ".dev/svids/vault.pem",
  tlsKey: ".dev/svids/vault-key.pem",
  dataVolume: "vault-data",
  dataDirInContainer: "/var/lib/hexr-vault",
} as const;

/** The LLM provider emulator (support/llm-provider.ts) on the compose network: stack/compose-llm-provider.ts. */
export const LLM_PROVIDER_URL = `http://${SERVICES.llmProvider}:${LLM_EMULATOR_PORT}`;

/**
 * The filter configuration the compose sidecar runs: the native stack's (stackFilterConfiguration),
 * with the vault door on and the LLM route's section (envoy/llm-filter.json), as `npm start` runs it.
 */
export function composeFilterConfiguration(): FilterConfiguration {
  return stackFilterConfiguration({ vault: true, llmSection: loadLlmSection() });
}

export interface ComposeFiles {
  /** Directory holding the dev identity files (ca.pem, jwks.json, ...). */
  identityDir: string;
  wasmPath: string;
  /** The LLM filter's module; default llm_filter.wasm beside `wasmPath` (both are in build/). */
  llmWasmPath?: string;
  /** In the container, Envoy's stdout: `docker compose logs envoy` shows the access log. */
  accessLogPath: string;
}

/** The files as the Envoy container sees them. */
export const CONTAINER_FILES: ComposeFiles = {
  identityDir: ENVOY_MOUNTS.identity.container,
  wasmPath: `${ENVOY_MOUNTS.wasm.container}/exchange_filter.wasm`,
  llmWasmPath: `${ENVOY_MOUNTS.wasm.container}/llm_filter.wasm`,
  accessLogPath: "/dev/stdout",
};

export function composeSidecarValues(files: ComposeFiles = CONTAINER_FILES): SidecarValues {
  const identity = (name: string) => `${files.identityDir}/${name}`;
  return {
    nodeId: "compose-pod",
    adminSocket: ENVOY_ADMIN_SOCKET_IN_CONTAINER,
    // Published ports reach a container on its own interface, not on its loopback.
    statsAddress: "0.0.0.0",
    statsPort: DEFAULT_PORTS.stats,
    listenAddress: "0.0.0.0",
    agentPort: DEFAULT_PORTS.agent,
    agentMtlsPort: DEFAULT_PORTS.agentMtls,
    accessLogPath: files.accessLogPath,
    injectorHost: SERVICES.injector,
    injectorPort: DEFAULT_PORTS.injector,
    injectorSni: "localhost",
    injectorSpiffeId: INJECTOR_SPIFFE_ID,
    bridgeHost: SERVICES.bridge,
    bridgePort: DEFAULT_PORTS.bridge,
    bridgeSpiffeId: BRIDGE_SPIFFE_ID,
    wasmPath: files.wasmPath,
    filterConfiguration: composeFilterConfiguration(),
    jwtIssuer: DEV_ISSUER,
    jwtAudience: DEV_AUDIENCE,
    identity: {
      source: "files",
      jwksPath: identity("jwks.json"),
      trustDomains: [{ name: DEV_TRUST_DOMAIN, bundle: identity("ca.pem") }],
      trustBundle: identity("ca.pem"),
      listenerCert: identity("listener.pem"),
      listenerKey: identity("listener-key.pem"),
      sidecarCert: identity("sidecar.pem"),
      sidecarKey: identity("sidecar-key.pem"),
    },
    // The vault door: the vault's certificate checked by its SPIFFE ID (it also names `vault`).
    vault: { host: SERVICES.vault, port: DEFAULT_PORTS.vault, sni: SERVICES.vault, spiffeId: VAULT_SPIFFE_ID },
    llm: {
      wasmPath: files.llmWasmPath ?? path.posix.join(path.posix.dirname(files.wasmPath), "llm_filter.wasm"),
      providers: llmEmulatorProviders(LLM_PROVIDER_URL),
    },
  };
}

export function renderComposeEnvoyConfig(files: ComposeFiles = CONTAINER_FILES): string {
  return renderSidecarConfig(composeSidecarValues(files));
}
