// Renders the Envoy configuration templates in envoy/ with concrete ports, addresses and paths.
// A template names its values as {{name}}; rendering fails on a value the template does not use
// or a placeholder nobody filled in, so a template and its callers cannot drift apart silently.
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../support/tools.ts";

export const envoyDir = path.join(projectRoot, "envoy");
export const sidecarTemplatePath = path.join(envoyDir, "sidecar.yaml");
export const filterConfigPath = path.join(envoyDir, "exchange-filter.json");
export const metadataListenerTemplatePath = path.join(envoyDir, "metadata-listener.yaml");

const PLACEHOLDER = /\{\{([a-z0-9_]+)\}\}/g;

export type TemplateValues = Record<string, string | number>;

export function renderTemplate(template: string, values: TemplateValues): string {
  const used = new Set<string>();
  const missing = new Set<string>();
  const rendered = template.replace(PLACEHOLDER, (_, name: string) => {
    if (!(name in values)) {
      missing.add(name);
      return "";
    }
    used.add(name);
    return String(values[name]);
  });
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (missing.size > 0) throw new Error(`template values missing: ${[...missing].join(", ")}`);
  if (unused.length > 0) throw new Error(`template has no placeholder for: ${unused.join(", ")}`);
  return rendered;
}

/** The exchange filter's plugin configuration (docs/filter-contract.md) the stack ships with. */
export type FilterConfiguration = Record<string, unknown>;

export function loadFilterConfiguration(): FilterConfiguration {
  return JSON.parse(readFileSync(filterConfigPath, "utf8")) as FilterConfiguration;
}

/**
 * The longest JWT-SVID lifetime jwt_authn accepts (`max_lifetime`: exp − now), unless a rendering
 * says otherwise. SPIRE's JWT-SVIDs last 5 minutes by default; the dev tokens an hour, the soak
 * run's four.
 */
export const DEFAULT_JWT_MAX_LIFETIME_SECONDS = 24 * 3600;
/** How long an mTLS connection may last (`max_connection_duration`): SPIRE's default X.509-SVID lifetime. */
export const DEFAULT_MTLS_MAX_CONNECTION_SECONDS = 3600;
/** Linux's limit for a Unix socket path (sun_path, 108 bytes with its NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

/** A trust domain whose X.509-SVIDs the mTLS listener accepts, and the CA bundle (PEM file) of that domain alone. */
export interface TrustDomainBundle {
  name: string;
  bundle: string;
}

/**
 * One role's metadata listener (envoy/metadata-listener.yaml): the GCE and Azure doors on
 * 127.0.0.1:port, serving the identity its filter configuration names.
 */
export interface MetadataListener {
  /** [a-z0-9_-]: names the listener, its stats and its plugin. */
  name: string;
  port: number;
  filterConfiguration: FilterConfiguration;
}

/** Everything envoy/sidecar.yaml needs; see the comments in that file. */
export interface SidecarValues {
  nodeId: string;
  /** Envoy's admin: a Unix socket (mode 0600), never a TCP port. */
  adminSocket: string;
  /** The stats listener (GET /stats/prometheus only). */
  statsAddress: string;
  statsPort: number;
  listenAddress: string;
  agentPort: number;
  agentMtlsPort: number;
  accessLogPath: string;
  injectorHost: string;
  injectorPort: number;
  /** The TLS server name sent to the injector (its certificate is checked by SPIFFE ID, not by name). */
  injectorSni: string;
  injectorSpiffeId: string;
  bridgeHost: string;
  bridgePort: number;
  /** The bridge's certificate must carry exactly this SPIFFE ID (it is checked by ID, not by name). */
  bridgeSpiffeId: string;
  wasmPath: string;
  filterConfiguration: FilterConfiguration;
  jwtIssuer: string;
  jwtAudience: string;
  jwksPath: string;
  /** Default DEFAULT_JWT_MAX_LIFETIME_SECONDS. */
  jwtMaxLifetimeSeconds?: number;
  /** Agents' X.509-SVIDs: one bundle per trust domain (Envoy's SPIFFE certificate validator). */
  trustDomains: TrustDomainBundle[];
  /** Default DEFAULT_MTLS_MAX_CONNECTION_SECONDS. */
  mtlsMaxConnectionSeconds?: number;
  /** The CA bundle the injector's and the bridge's certificates chain to. */
  trustBundle: string;
  listenerCert: string;
  listenerKey: string;
  sidecarCert: string;
  sidecarKey: string;
  /** Default none. */
  metadataListeners?: MetadataListener[];
}

export function renderSidecarConfig(values: SidecarValues): string {
  const filter = values.filterConfiguration;
  // Envoy's clusters carry the names the filter calls (docs/filter-contract.md defaults otherwise);
  // without L2 the bridge cluster still exists, unused.
  const clusterName = (upstream: unknown, fallback: string) => {
    const cluster = (upstream as { cluster?: unknown } | undefined)?.cluster;
    return typeof cluster === "string" ? cluster : fallback;
  };
  const exchangePath = typeof filter.exchange_path === "string" ? filter.exchange_path : "/exchange";
  const awsPath = (filter.aws_container as { path?: unknown } | null | undefined)?.path;
  // The revocation route exists only when the filter has a revocation path; otherwise it repeats
  // the exchange route, which Envoy never reaches (the first match wins).
  const revocationPath = (filter.revocation as { path?: unknown } | null | undefined)?.path;
  if (Buffer.byteLength(values.adminSocket) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`the admin socket path is longer than a Unix socket path may be (${MAX_SOCKET_PATH_BYTES} bytes): ${values.adminSocket}`);
  }
  if (values.trustDomains.length === 0) throw new Error("the mTLS listener needs at least one trust domain");
  const seconds = (value: number, what: string) => {
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${what} must be a positive whole number of seconds, not ${value}`);
    return `${value}s`;
  };
  return renderTemplate(readFileSync(sidecarTemplatePath, "utf8"), {
    node_id: values.nodeId,
    admin_socket: values.adminSocket,
    stats_address: values.statsAddress,
    stats_port: values.statsPort,
    listen_address: values.listenAddress,
    agent_port: values.agentPort,
    agent_mtls_port: values.agentMtlsPort,
    access_log_path: values.accessLogPath,
    exchange_path: exchangePath,
    aws_credentials_path: filter.aws_container ? (typeof awsPath === "string" ? awsPath : "/v1/aws/credentials") : exchangePath,
    revocation_path: filter.revocation ? (typeof revocationPath === "string" ? revocationPath : "/revoke") : exchangePath,
    trap_path: typeof filter.debug_trap_path === "string" ? filter.debug_trap_path : exchangePath,
    injector_host: values.injectorHost,
    injector_port: values.injectorPort,
    injector_sni: values.injectorSni,
    injector_spiffe_id: values.injectorSpiffeId,
    injector_cluster: clusterName(filter.injector, "hexr_injector"),
    l2_cluster: clusterName(filter.l2, "hexr_bridge"),
    bridge_host: values.bridgeHost,
    bridge_port: values.bridgePort,
    bridge_spiffe_id: values.bridgeSpiffeId,
    wasm_path: values.wasmPath,
    // A JSON string literal is also a valid double-quoted YAML scalar.
    filter_configuration: JSON.stringify(JSON.stringify(filter)),
    jwt_issuer: values.jwtIssuer,
    jwt_audience: values.jwtAudience,
    jwks_path: values.jwksPath,
    jwt_max_lifetime: seconds(values.jwtMaxLifetimeSeconds ?? DEFAULT_JWT_MAX_LIFETIME_SECONDS, "jwtMaxLifetimeSeconds"),
    // A JSON array is a YAML flow sequence.
    mtls_trust_domains: JSON.stringify(values.trustDomains.map(({ name, bundle }) => ({ name, trust_bundle: { filename: bundle } }))),
    mtls_max_connection_duration: seconds(values.mtlsMaxConnectionSeconds ?? DEFAULT_MTLS_MAX_CONNECTION_SECONDS, "mtlsMaxConnectionSeconds"),
    trust_bundle: values.trustBundle,
    listener_cert: values.listenerCert,
    listener_key: values.listenerKey,
    sidecar_cert: values.sidecarCert,
    sidecar_key: values.sidecarKey,
    metadata_listeners: (values.metadataListeners ?? []).map(renderMetadataListener).join(""),
  });
}

const LISTENER_NAME = /^[a-z0-9_-]{1,64}$/;

function renderMetadataListener(listener: MetadataListener): string {
  if (!LISTENER_NAME.test(listener.name)) throw new Error(`a metadata listener's name must match ${LISTENER_NAME}: ${listener.name}`);
  const filter = listener.filterConfiguration;
  if (!filter.gce_metadata && !filter.azure_managed_identity) throw new Error(`metadata listener ${listener.name} opens no door (gce_metadata, azure_managed_identity)`);
  const azurePath = (filter.azure_managed_identity as { path?: unknown } | null | undefined)?.path;
  return renderTemplate(readFileSync(metadataListenerTemplatePath, "utf8"), {
    metadata_name: listener.name,
    metadata_port: listener.port,
    // Without the Azure door this route is never reached: "/" is matched first.
    azure_identity_path: typeof azurePath === "string" ? azurePath : "/",
    metadata_filter_configuration: JSON.stringify(JSON.stringify(filter)),
  });
}
