// Renders the Envoy configuration templates in envoy/ with concrete ports, addresses and paths.
// A template names its values as {{name}}; rendering fails on a value the template does not use
// or a placeholder nobody filled in, so a template and its callers cannot drift apart silently.
import { readFileSync } from "node:fs";
import path from "node:path";
import { CONTRACT, type LlmProviderName } from "../contract/index.ts";
import { projectRoot } from "../support/tools.ts";

export const envoyDir = path.join(projectRoot, "envoy");
export const sidecarTemplatePath = path.join(envoyDir, "sidecar.yaml");
export const filterConfigPath = path.join(envoyDir, "exchange-filter.json");
export const metadataListenerTemplatePath = path.join(envoyDir, "metadata-listener.yaml");
export const llmSectionPath = path.join(envoyDir, "llm-filter.json");

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

/** The LLM filter's section (`llm`) the stack ships with: providers, models and list prices. */
export function loadLlmSection(): FilterConfiguration {
  return JSON.parse(readFileSync(llmSectionPath, "utf8")) as FilterConfiguration;
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

/** The sidecar's identity material in PEM and JWKS files (the dev identity, docker-compose). */
export interface FileIdentity {
  source: "files";
  jwksPath: string;
  /** Agents' X.509-SVIDs: one bundle per trust domain (Envoy's SPIFFE certificate validator). */
  trustDomains: TrustDomainBundle[];
  /** The CA bundle the injector's and the bridge's certificates chain to. */
  trustBundle: string;
  listenerCert: string;
  listenerKey: string;
  sidecarCert: string;
  sidecarKey: string;
}

/**
 * The sidecar's identity from SPIRE: its X.509-SVID and the trust bundles over SDS from the SPIRE
 * agent's Workload API socket, rotated without a restart; the JWT-SVID keys from SPIRE's OIDC
 * discovery provider, fetched again every `jwksCacheSeconds`.
 */
export interface SpireIdentity {
  source: "spire";
  /** The SPIRE agent's Workload API socket, which also serves SDS. */
  agentSocket: string;
  /** The sidecar's SPIFFE ID: the SDS secret holding its X.509-SVID. */
  spiffeId: string;
  /** The OIDC discovery provider's key set, e.g. http://127.0.0.1:PORT/keys. */
  jwksUrl: string;
  jwksCacheSeconds: number;
}

export type SidecarIdentity = FileIdentity | SpireIdentity;

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
  /** Default DEFAULT_JWT_MAX_LIFETIME_SECONDS. */
  jwtMaxLifetimeSeconds?: number;
  /** Default DEFAULT_MTLS_MAX_CONNECTION_SECONDS. */
  mtlsMaxConnectionSeconds?: number;
  /** Where the sidecar's X.509-SVID, the trust bundles and the JWT-SVID keys come from. */
  identity: SidecarIdentity;
  /** The vault, when the filter's vault door is on: its address and the SPIFFE ID its certificate must carry. */
  vault?: { host: string; port: number; sni: string; spiffeId: string };
  /** Default none. */
  metadataListeners?: MetadataListener[];
  /**
   * The LLM route, when the filter configuration has an `llm` section: the LLM filter's module, and
   * where each provider it serves is (its base URL: https in a deployment, loopback http in tests).
   */
  llm?: LlmUpstreams;
}

/** The LLM filter's module and the base URL of each provider the route serves. */
export interface LlmUpstreams {
  wasmPath: string;
  providers: Partial<Record<LlmProviderName, string>>;
  /** CA certificates that https providers must chain to; default the system's. */
  caFile?: string;
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
  const identity = identityFragments(values);
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
    injector_cluster: clusterName(filter.injector, "hexr_injector"),
    l2_cluster: clusterName(filter.l2, "hexr_bridge"),
    bridge_host: values.bridgeHost,
    bridge_port: values.bridgePort,
    wasm_path: values.wasmPath,
    // A JSON string literal is also a valid double-quoted YAML scalar.
    filter_configuration: JSON.stringify(JSON.stringify(filter)),
    jwt_issuer: values.jwtIssuer,
    jwt_audience: values.jwtAudience,
    jwt_max_lifetime: seconds(values.jwtMaxLifetimeSeconds ?? DEFAULT_JWT_MAX_LIFETIME_SECONDS, "jwtMaxLifetimeSeconds"),
    mtls_max_connection_duration: seconds(values.mtlsMaxConnectionSeconds ?? DEFAULT_MTLS_MAX_CONNECTION_SECONDS, "mtlsMaxConnectionSeconds"),
    ...identity.values,
    ...vaultFragments(values, identity.upstream),
    ...llmFragments(values),
    metadata_listeners: (values.metadataListeners ?? []).map(renderMetadataListener).join(""),
  });
}

function seconds(value: number, what: string): string {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${what} must be a positive whole number of seconds, not ${value}`);
  return `${value}s`;
}

/** Envoy's names for the SPIRE agent's SDS secrets (SPIRE's defaults). */
const SDS_ALL_BUNDLES = "ALL";
const SDS_OWN_BUNDLE = "ROOTCA";
const SPIRE_AGENT_CLUSTER = "spire_agent";
/** Verified JWT-SVIDs jwt_authn remembers (keys from files only). */
const JWT_CACHE_SIZE = 1000;
const SPIRE_OIDC_CLUSTER = "spire_oidc";
const SPIFFE_VALIDATOR = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig";

/**
 * The template's identity placeholders: the jwt_authn providers' key source, the TLS contexts of
 * the mTLS listener and of the two upstreams, and the clusters SPIRE is reached through. Each is a
 * JSON value, which YAML reads as a flow collection.
 */
function identityFragments(values: SidecarValues): { values: TemplateValues; upstream: (spiffeId: string) => object } {
  const identity = values.identity;
  const checkedBy = (spiffeId: string) => [{ san_type: "URI", matcher: { exact: spiffeId } }];
  if (identity.source === "files") {
    if (identity.trustDomains.length === 0) throw new Error("the mTLS listener needs at least one trust domain");
    const certificate = (cert: string, key: string) => [{ certificate_chain: { filename: cert }, private_key: { filename: key } }];
    const upstream = (spiffeId: string) => ({
      tls_certificates: certificate(identity.sidecarCert, identity.sidecarKey),
      validation_context: { trusted_ca: { filename: identity.trustBundle }, match_typed_subject_alt_names: checkedBy(spiffeId) },
    });
    return { upstream, values: {
      jwks_source: `local_jwks: ${JSON.stringify({ filename: identity.jwksPath })}`,
      jwt_cache: `jwt_cache_config: ${JSON.stringify({ jwt_cache_size: JWT_CACHE_SIZE })}`,
      listener_tls_context: JSON.stringify({
        tls_certificates: certificate(identity.listenerCert, identity.listenerKey),
        validation_context: {
          custom_validator_config: {
            name: "envoy.tls.cert_validator.spiffe",
            typed_config: {
              "@type": SPIFFE_VALIDATOR,
              trust_domains: identity.trustDomains.map(({ name, bundle }) => ({ name, trust_bundle: { filename: bundle } })),
            },
          },
        },
      }),
      injector_tls_context: JSON.stringify(upstream(values.injectorSpiffeId)),
      bridge_tls_context: JSON.stringify(upstream(values.bridgeSpiffeId)),
      identity_clusters: "",
    } };
  }
  const jwks = new URL(identity.jwksUrl);
  if (jwks.protocol !== "http:" || !jwks.port) throw new Error(`the JWKS URL must be http://host:port/... (the OIDC discovery provider on the node), not ${identity.jwksUrl}`);
  if (Buffer.byteLength(identity.agentSocket) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`the SPIRE agent socket path is longer than a Unix socket path may be (${MAX_SOCKET_PATH_BYTES} bytes): ${identity.agentSocket}`);
  }
  const sds = { resource_api_version: "V3", api_config_source: { api_type: "GRPC", transport_api_version: "V3", grpc_services: [{ envoy_grpc: { cluster_name: SPIRE_AGENT_CLUSTER } }] } };
  const svid = [{ name: identity.spiffeId, sds_config: sds }];
  const upstream = (spiffeId: string) => ({
    tls_certificate_sds_secret_configs: svid,
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: checkedBy(spiffeId) },
      validation_context_sds_secret_config: { name: SDS_OWN_BUNDLE, sds_config: sds },
    },
  });
  const endpoint = (address: object) => ({ endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] });
  const clusters = [
    {
      name: SPIRE_AGENT_CLUSTER,
      connect_timeout: "1s",
      typed_extension_protocol_options: {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
          "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
      load_assignment: { cluster_name: SPIRE_AGENT_CLUSTER, ...endpoint({ pipe: { path: identity.agentSocket } }) },
    },
    {
      name: SPIRE_OIDC_CLUSTER,
      type: "STRICT_DNS",
      dns_lookup_family: "V4_ONLY",
      connect_timeout: "1s",
      load_assignment: { cluster_name: SPIRE_OIDC_CLUSTER, ...endpoint({ socket_address: { address: jwks.hostname, port_value: Number(jwks.port) } }) },
    },
  ];
  return { upstream, values: {
    // Fetched before the listeners start, then again every cache_duration, off the request path:
    // a key SPIRE adds is trusted, and a key it removes refused, without a restart.
    jwks_source: `remote_jwks: ${JSON.stringify({
      http_uri: { uri: identity.jwksUrl, cluster: SPIRE_OIDC_CLUSTER, timeout: "2s" },
      cache_duration: seconds(identity.jwksCacheSeconds, "jwksCacheSeconds"),
      async_fetch: { fast_listener: false },
      retry_policy: { num_retries: 10, retry_back_off: { base_interval: "0.2s", max_interval: "2s" } },
    })}`,
    jwt_cache: "# no JWT cache: every token is checked against the current keys",
    // "ALL" is the SPIFFE validator with one bundle per trust domain SPIRE knows.
    listener_tls_context: JSON.stringify({
      tls_certificate_sds_secret_configs: svid,
      validation_context_sds_secret_config: { name: SDS_ALL_BUNDLES, sds_config: sds },
    }),
    injector_tls_context: JSON.stringify(upstream(values.injectorSpiffeId)),
    bridge_tls_context: JSON.stringify(upstream(values.bridgeSpiffeId)),
    identity_clusters: clusters.map((cluster) => `  - ${JSON.stringify(cluster)}\n`).join(""),
  } };
}

/** The vault's cluster, always named so (the router's, not the filter's: the filter only forwards). */
const VAULT_CLUSTER = "hexr_vault";

/**
 * The vault door's routes and cluster, when the filter's `vault` is on: requests under the vault's
 * paths go to the vault over mTLS, unbuffered (the vault bounds bodies itself). Without it the
 * routes do not exist, so no request reaches a vault without the door having named its caller.
 */
function vaultFragments(values: SidecarValues, upstream: (spiffeId: string) => object): TemplateValues {
  const vault = values.vault;
  if (values.filterConfiguration.vault !== true) return { vault_routes: "", vault_cluster: "" };
  if (!vault) throw new Error("the filter's vault door is on, but the sidecar has no vault to forward to (SidecarValues.vault)");
  const route = (prefix: string) => ({
    match: { path_separated_prefix: prefix },
    route: { cluster: VAULT_CLUSTER, timeout: "10s" },
    typed_per_filter_config: { "envoy.filters.http.buffer": { "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute", disabled: true } },
  });
  const cluster = {
    name: VAULT_CLUSTER,
    type: "STRICT_DNS",
    dns_lookup_family: "V4_ONLY",
    connect_timeout: "1s",
    load_assignment: { cluster_name: VAULT_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: vault.host, port_value: vault.port } } } }] }] },
    transport_socket: {
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        sni: vault.sni,
        common_tls_context: upstream(vault.spiffeId),
      },
    },
  };
  return {
    vault_routes: [CONTRACT.vault.secrets_path, CONTRACT.vault.audit_path].map((prefix) => `              - ${JSON.stringify(route(prefix))}\n`).join(""),
    vault_cluster: `  - ${JSON.stringify(cluster)}\n`,
  };
}

/** The LLM filter's name in the filter chains, as routes name it to turn it on. */
const LLM_FILTER = "hexr.llm";
const SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt";
/** Bytes the LLM filter may add to a request body ("stream_options":{"include_usage":true},), and some. */
const STREAM_OPTIONS_ROOM = 64;
/** The LLM filter's own default (llm/config.ts). */
const DEFAULT_LLM_MAX_REQUEST_BYTES = 1_048_576;

/**
 * The LLM route (llm/ in assembly/), when the filter configuration has an `llm` section: one route
 * and one cluster per provider it serves, and the LLM filter, which is off everywhere else so that
 * no other request enters its VM. On the LLM routes the exchange filter is off, and the buffer
 * filter holds a request (up to llm.max_request_bytes) until the LLM filter has read its body;
 * answers stream through unbuffered. `{path}/{provider}/` is rewritten to the provider's base path.
 */
function llmFragments(values: SidecarValues): TemplateValues {
  const section = values.filterConfiguration.llm as { providers?: Record<string, unknown> } | undefined;
  if (!section) return { llm_routes: "", llm_filter: "", llm_clusters: "" };
  const llm = values.llm;
  if (!llm) throw new Error("the filter configuration has an llm section, but the sidecar has no LLM upstreams (SidecarValues.llm)");
  const maxRequestBytes = typeof (section as { max_request_bytes?: unknown }).max_request_bytes === "number"
    ? (section as { max_request_bytes: number }).max_request_bytes : DEFAULT_LLM_MAX_REQUEST_BYTES;
  const llmFilterOnly = (buffer: object) => ({
    "envoy.filters.http.buffer": { "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute", ...buffer },
    "envoy.filters.http.wasm": { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", disabled: true },
    [LLM_FILTER]: { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", config: {} },
  });
  const routes: object[] = [{
    match: { path: CONTRACT.llm.usage_path },
    direct_response: { status: 503, body: { inline_string: '{"error":{"type":"CredentialError","message":"the LLM filter did not handle this request"}}' } },
    typed_per_filter_config: llmFilterOnly({ disabled: true }),
  }];
  const clusters: object[] = [];
  for (const name of Object.keys(section.providers ?? {}) as LlmProviderName[]) {
    const base = llm.providers[name];
    if (!base) throw new Error(`the LLM filter serves ${name}, but SidecarValues.llm has no URL for it`);
    const url = new URL(base);
    const tls = url.protocol === "https:";
    const cluster = `hexr_llm_${name}`;
    routes.push({
      match: { prefix: `${CONTRACT.llm.path}/${name}/` },
      // No overall timeout: a streamed answer lasts as long as the model writes; an idle one ends.
      route: { cluster, prefix_rewrite: url.pathname.replace(/\/?$/, "/"), host_rewrite_literal: url.host, timeout: "0s", idle_timeout: "300s" },
      // The buffer filter holds the request until the LLM filter has read the whole body.
      // (With room for the member the LLM filter may add: stream_options, 40 bytes.)
      typed_per_filter_config: llmFilterOnly({ buffer: { max_request_bytes: maxRequestBytes + STREAM_OPTIONS_ROOM } }),
    });
    clusters.push({
      name: cluster,
      type: "STRICT_DNS",
      dns_lookup_family: "V4_ONLY",
      connect_timeout: "5s",
      load_assignment: { cluster_name: cluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: url.hostname, port_value: Number(url.port || (tls ? 443 : 80)) } } } }] }] },
      ...(tls ? {
        transport_socket: {
          name: "envoy.transport_sockets.tls",
          typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            sni: url.hostname,
            common_tls_context: {
              validation_context: { trusted_ca: { filename: llm.caFile ?? SYSTEM_CA_FILE }, match_typed_subject_alt_names: [{ san_type: "DNS", matcher: { exact: url.hostname } }] },
            },
          },
        },
      } : {}),
    });
  }
  const filter = {
    name: LLM_FILTER,
    disabled: true,
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
      config: {
        name: "hexr_llm",
        root_id: "hexr_llm",
        failure_policy: "FAIL_RELOAD",
        reload_config: { backoff: { base_interval: "1s" } },
        // The exchange filter's vm_id: the host keys shared data by vm_id, so both modules share
        // L1, the revocations and the cross-worker claims.
        vm_config: { vm_id: "hexr_exchange", runtime: "envoy.wasm.runtime.v8", code: { local: { filename: llm.wasmPath } } },
        configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: JSON.stringify(values.filterConfiguration) },
      },
    },
  };
  return {
    llm_routes: routes.map((route) => `              - ${JSON.stringify(route)}\n`).join(""),
    llm_filter: `          - ${JSON.stringify(filter)}\n`,
    llm_clusters: clusters.map((cluster) => `  - ${JSON.stringify(cluster)}\n`).join(""),
  };
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
