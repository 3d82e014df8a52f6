// The docker-compose flavour of the stack: the same Envoy template and filter configuration as
// the native stack, rendered with the services' compose names and the paths the containers mount.
// docker-compose.yml runs stack/compose-setup.ts once to write them; e2e/compose.test.ts checks
// that the two stay consistent.
import { BRIDGE_SPIFFE_ID, DEV_AUDIENCE, DEV_ISSUER, INJECTOR_SPIFFE_ID } from "../support/dev-identity.ts";
import { DEFAULT_PORTS } from "./defaults.ts";
import { loadFilterConfiguration, renderSidecarConfig, type SidecarValues } from "./render.ts";

/** Where the project is mounted in the Node containers (setup, bridge, injector). */
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

/** Compose service names, which are also their host names on the compose network. */
export const SERVICES = { injector: "injector", bridge: "bridge", opa: "opa", moto: "moto", valkey: "valkey" } as const;

export interface ComposeFiles {
  /** Directory holding the dev identity files (ca.pem, jwks.json, ...). */
  identityDir: string;
  wasmPath: string;
  /** In the container, Envoy's stdout: `docker compose logs envoy` shows the access log. */
  accessLogPath: string;
}

/** The files as the Envoy container sees them. */
export const CONTAINER_FILES: ComposeFiles = {
  identityDir: ENVOY_MOUNTS.identity.container,
  wasmPath: `${ENVOY_MOUNTS.wasm.container}/exchange_filter.wasm`,
  accessLogPath: "/dev/stdout",
};

export function composeSidecarValues(files: ComposeFiles = CONTAINER_FILES): SidecarValues {
  const identity = (name: string) => `${files.identityDir}/${name}`;
  return {
    nodeId: "compose-pod",
    // Published ports reach a container on its own interface, not on its loopback.
    adminAddress: "0.0.0.0",
    adminPort: DEFAULT_PORTS.admin,
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
    filterConfiguration: loadFilterConfiguration(),
    jwtIssuer: DEV_ISSUER,
    jwtAudience: DEV_AUDIENCE,
    jwksPath: identity("jwks.json"),
    trustBundle: identity("ca.pem"),
    listenerCert: identity("listener.pem"),
    listenerKey: identity("listener-key.pem"),
    sidecarCert: identity("sidecar.pem"),
    sidecarKey: identity("sidecar-key.pem"),
  };
}

export function renderComposeEnvoyConfig(files: ComposeFiles = CONTAINER_FILES): string {
  return renderSidecarConfig(composeSidecarValues(files));
}
