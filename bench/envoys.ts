// The Envoys the scenarios compare the sidecar with. Each one is derived from the sidecar's own
// rendered configuration (the file the stack runs), so it keeps the very same listener: address,
// HTTP connection manager settings, access log, and whichever of the sidecar's HTTP filters the
// scenario keeps. Only the filter list, the routes, the port and the admin socket change (the
// sidecar's other listeners, mTLS and stats, and the stats listener's admin cluster are left out):
//
//   floor                 buffer + router; every path answered by direct_response with the
//                         credential's body: the physical limit of this listener
//   floor-jwt             the authenticated floor: the sidecar's jwt_authn exactly as shipped
//                         (providers, rules, verified-token cache) + buffer + router, same direct_response
//   wasm-floor            the sidecar unchanged (jwt_authn, its routes and per-route filter configs,
//                         buffer, router, the wasm filter's runtime and failure policy) but for the
//                         wasm module: build/wasm_floor.wasm (bench/wasm-floor/), which answers with
//                         an L1 hit's body and headers from the same callback and does nothing else.
//                         Started once per door it is compared with (POST /exchange, the AWS door's
//                         GET), each with that door's L1 answer
//   metadata-wasm-floor   the same for the sidecar's first metadata listener (the GCE and Azure doors:
//                         no jwt_authn, no buffer), which this variant keeps instead of the agent one
//   pass-through-shipped  the sidecar's filter chain and routes as shipped (whatever they do with the
//                         wasm filter on that route); the route of a non-exchange path goes to a
//                         trivial upstream instead of answering 404
//   pass-through-ignored  the same, with the wasm filter enabled on that route: a request the filter
//                         is called for and ignores
//   pass-through-plain    the same without the wasm filter
//   no-filter             jwt_authn + router; /exchange goes straight to the injector cluster, with the
//                         verified SPIFFE ID in x-hexr-spiffe-id (the injector requires it): what every
//                         request costs if the proxy caches nothing
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { adminReady } from "../stack/envoy.ts";
import { renderTemplate } from "../stack/render.ts";
import { freePort, startProcess, type RunningProcess } from "../support/processes.ts";
import { tools } from "../support/tools.ts";

export type Variant =
  | "floor" | "floor-jwt" | "wasm-floor" | "metadata-wasm-floor" | "pass-through-shipped" | "pass-through-ignored" | "pass-through-plain"
  | "no-filter";

/** The path of the pass-through scenarios' GET: not one the exchange filter serves. */
export const PASS_THROUGH_PATH = "/v1/objects/report.csv";

const UPSTREAM_TEMPLATE = path.join(path.dirname(fileURLToPath(import.meta.url)), "envoy", "upstream.yaml");
const UPSTREAM_CLUSTER = "bench_upstream";
const JWT_AUTHN = "envoy.filters.http.jwt_authn";
const WASM = "envoy.filters.http.wasm";
const BUFFER = "envoy.filters.http.buffer";
const ROUTER = "envoy.filters.http.router";
const FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
/** The wasm floor's plugin, root context and VM id (in place of the sidecar's). */
const WASM_FLOOR_NAME = "bench_wasm_floor";
/** envoy/metadata-listener.yaml names each of its listeners, and their stat prefix, metadata_{role}. */
export const METADATA_LISTENER_PREFIX = "metadata_";

export interface BenchEnvoy {
  readonly name: string;
  /** http://127.0.0.1:PORT of its listener. */
  readonly url: string;
  /** Its admin's Unix socket (stack/envoy.ts adminRequest). */
  readonly adminSocket: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface VariantValues {
  port: number;
  /** The variant's own admin socket, in place of the sidecar's. */
  adminSocket: string;
  accessLogPath: string;
  /** The direct_response body (floor variants): a real credential body. */
  bodyFile?: string;
  /** The trivial upstream (pass-through variants). */
  upstreamPort?: number;
  /** The wasm floor's module and what it answers. */
  wasmFloor?: WasmFloor;
}

/** An answer as the filter sends it on an L1 hit: what a wasm floor is made to answer. */
export interface FloorAnswer {
  body: string;
  /** The response headers the filter set, in order (not the ones Envoy adds: date, server, content-length). */
  headers: [string, string][];
}

export interface WasmFloor extends FloorAnswer {
  /** build/wasm_floor.wasm, built from bench/wasm-floor/floor.ts. */
  wasmPath: string;
}

/** The floor module's plugin configuration (bench/wasm-floor/floor.ts): "name: value\n" per header, "\n", the body. */
export function wasmFloorConfiguration(floor: FloorAnswer): string {
  if (floor.body.length === 0) throw new Error("the wasm floor needs a body");
  for (const [name, value] of floor.headers) {
    if (!/^[a-z0-9-]+$/.test(name) || /[\r\n]/.test(value)) throw new Error(`the wasm floor cannot send the header ${name}: ${value}`);
  }
  return floor.headers.map(([name, value]) => `${name}: ${value}\n`).join("") + `\n${floor.body}`;
}

// The parsed YAML of an Envoy config.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** The sidecar's rendered config, changed into `variant` (YAML text). */
export function deriveVariant(sidecarYaml: string, variant: Variant, values: VariantValues): string {
  const config = YAML.parse(sidecarYaml);
  config.node.id = `bench-${variant}`;
  const sidecarAdmin = config.admin.address.pipe?.path;
  if (typeof sidecarAdmin !== "string") throw new Error("the sidecar config's admin is not a Unix socket (admin.address.pipe)");
  config.admin.address = adminAddress(values.adminSocket);
  // The plain agent listener only (the first metadata listener for metadata-wasm-floor): the
  // others would collide with the sidecar's own ports; without the stats listener, the cluster it
  // reaches the admin through goes too.
  const listener = (config.static_resources.listeners as Json[]).find((l) =>
    variant === "metadata-wasm-floor" ? l.name.startsWith(METADATA_LISTENER_PREFIX) : l.name === "agent_http");
  if (!listener) throw new Error(`the sidecar config has no ${variant === "metadata-wasm-floor" ? "metadata" : "agent_http"} listener`);
  config.static_resources.listeners = [listener];
  config.static_resources.clusters = (config.static_resources.clusters as Json[]).filter(
    (cluster) => !cluster.load_assignment?.endpoints?.some((e: Json) => e.lb_endpoints?.some((l: Json) => l.endpoint?.address?.pipe?.path === sidecarAdmin)),
  );
  listener.address.socket_address.port_value = values.port;
  const hcm = listener.filter_chains[0].filters[0].typed_config;
  hcm.access_log[0].typed_config.path = values.accessLogPath;
  const virtualHost = hcm.route_config.virtual_hosts[0];
  const filter = (name: string) => {
    const found = hcm.http_filters.find((f: { name: string }) => f.name === name);
    if (!found) throw new Error(`the sidecar config has no ${name} filter`);
    return found;
  };

  switch (variant) {
    case "floor":
    case "floor-jwt":
      if (values.bodyFile === undefined) throw new Error("the direct_response floors need the credential's body");
      // The buffer filter is what lets Envoy answer a POST from config on a kept-alive
      // connection: with the router alone, direct_response answers at the request headers, before
      // the body, and Envoy then closes the connection (a TCP handshake per request). The sidecar
      // reads the whole body before it answers, too.
      hcm.http_filters = variant === "floor" ? [filter(BUFFER), filter(ROUTER)] : [filter(JWT_AUTHN), filter(BUFFER), filter(ROUTER)];
      virtualHost.routes = [directResponse(values.bodyFile)];
      break;
    case "wasm-floor":
    case "metadata-wasm-floor": {
      if (!values.wasmFloor) throw new Error("the wasm floor needs its module and its answer");
      const wasm = filter(WASM).typed_config.config;
      wasm.name = WASM_FLOOR_NAME;
      wasm.root_id = WASM_FLOOR_NAME;
      wasm.vm_config.vm_id = WASM_FLOOR_NAME;
      wasm.vm_config.code = { local: { filename: values.wasmFloor.wasmPath } };
      delete wasm.vm_config.configuration;
      wasm.configuration = { "@type": "type.googleapis.com/google.protobuf.StringValue", value: wasmFloorConfiguration(values.wasmFloor) };
      break;
    }
    case "pass-through-shipped":
    case "pass-through-ignored":
    case "pass-through-plain": {
      if (values.upstreamPort === undefined) throw new Error("pass-through needs the upstream's port");
      // The route the sidecar takes for the path (its catch-all: 404, buffer disabled) forwards
      // instead, keeping its per-route filter configs; every other route stays as it is.
      const route = routeFor(hcm.route_config, PASS_THROUGH_PATH);
      delete route.direct_response;
      delete route.response_headers_to_add;
      route.route = { cluster: UPSTREAM_CLUSTER };
      if (variant === "pass-through-plain") {
        hcm.http_filters = hcm.http_filters.filter((f: { name: string }) => f.name !== WASM);
        for (const level of [hcm.route_config, virtualHost, ...virtualHost.routes] as Json[]) delete level.typed_per_filter_config?.[WASM];
      }
      if (variant === "pass-through-ignored" && !wasmRunsOn(hcm, PASS_THROUGH_PATH)) {
        // The route's own FilterConfig {disabled: true} goes. (Envoy 1.40 rejects an empty
        // FilterConfig for the wasm filter, "Empty route/virtual host per filter configuration",
        // so a filter disabled by default or per virtual host cannot be enabled on one route.)
        delete route.typed_per_filter_config?.[WASM];
        if (!wasmRunsOn(hcm, PASS_THROUGH_PATH)) {
          throw new Error(
            `the sidecar disables the wasm filter for ${PASS_THROUGH_PATH} other than by the route's own FilterConfig: ` +
              "bench/envoys.ts cannot enable it on that route alone (pass-through-ignored)",
          );
        }
      }
      config.static_resources.clusters.push(staticCluster(UPSTREAM_CLUSTER, values.upstreamPort));
      break;
    }
    case "no-filter": {
      hcm.http_filters = [filter(JWT_AUTHN), filter(ROUTER)];
      const exchangeRoute = virtualHost.routes.find((r: { match: { path?: string } }) => r.match.path !== undefined);
      const injector = injectorUpstream(sidecarYaml);
      virtualHost.routes = [{
        match: exchangeRoute.match,
        route: { cluster: injector.cluster, host_rewrite_literal: injector.authority, timeout: "10s" },
        request_headers_to_add: [
          header("x-hexr-spiffe-id", "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:sub)%"),
          header("x-hexr-identity-source", "jwt"),
        ],
      }];
      break;
    }
  }
  return YAML.stringify(config);
}

/**
 * The route of the first virtual host that a request for `path` takes (Envoy takes the first
 * route that matches). Only the match kinds a sidecar route uses are understood.
 */
function routeFor(routeConfig: Json, path: string): Json {
  for (const route of routeConfig.virtual_hosts[0].routes as Json[]) {
    const match = route.match as Json;
    if (match.path !== undefined) {
      if (match.path === path) return route;
    } else if (match.prefix !== undefined) {
      if (path.startsWith(match.prefix)) return route;
    } else if (match.path_separated_prefix !== undefined) {
      if (path === match.path_separated_prefix || path.startsWith(`${match.path_separated_prefix}/`)) return route;
    } else if (match.safe_regex !== undefined) {
      if (new RegExp(`^(?:${match.safe_regex.regex})$`).test(path)) return route;
    } else {
      throw new Error(`bench/envoys.ts cannot tell whether the route ${JSON.stringify(match)} matches ${path}`);
    }
  }
  throw new Error(`no route of the sidecar takes ${path}`);
}

/** Whether the HTTP connection manager `hcm` calls the wasm filter for a request on `path`. */
function wasmRunsOn(hcm: Json, path: string): boolean {
  const wasm = (hcm.http_filters as Json[]).find((f) => f.name === WASM);
  if (!wasm) return false;
  // The most specific FilterConfig decides: the route's, the virtual host's, the route table's.
  for (const level of [routeFor(hcm.route_config, path), hcm.route_config.virtual_hosts[0], hcm.route_config] as Json[]) {
    const perFilter = level.typed_per_filter_config?.[WASM];
    if (perFilter?.["@type"] === FILTER_CONFIG) return perFilter.disabled !== true;
  }
  return wasm.disabled !== true;
}

/** Whether the sidecar as rendered calls the wasm filter for the pass-through path. */
export function shippedWasmOnPassThrough(sidecarYaml: string): boolean {
  const config = YAML.parse(sidecarYaml);
  const listener = config.static_resources.listeners.find((l: { name: string }) => l.name === "agent_http");
  return wasmRunsOn(listener.filter_chains[0].filters[0].typed_config, PASS_THROUGH_PATH);
}

/** Which cluster and authority the filter's L3 call uses, read from its plugin configuration. */
function injectorUpstream(sidecarYaml: string): { cluster: string; authority: string } {
  const config = YAML.parse(sidecarYaml);
  const listener = config.static_resources.listeners[0];
  const wasm = listener.filter_chains[0].filters[0].typed_config.http_filters.find((f: { name: string }) => f.name === WASM);
  const plugin = JSON.parse(wasm.typed_config.config.configuration.value);
  return { cluster: plugin.injector?.cluster ?? "hexr_injector", authority: plugin.injector?.authority ?? "credential-injector" };
}

function directResponse(bodyFile: string) {
  return {
    match: { prefix: "/" },
    direct_response: { status: 200, body: { filename: bodyFile } },
    response_headers_to_add: [header("content-type", "application/json")],
  };
}

function header(key: string, value: string) {
  return { header: { key, value }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" };
}

/** Envoy's admin on a Unix socket only its user can open (0600), as the sidecar's. */
function adminAddress(socketPath: string) {
  return { pipe: { path: socketPath, mode: 0o600 } };
}

function staticCluster(name: string, port: number) {
  return {
    name,
    type: "STATIC",
    connect_timeout: "1s",
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }],
    },
  };
}

export function upstreamConfig(port: number, adminSocket: string, bodyFile: string): string {
  return renderTemplate(readFileSync(UPSTREAM_TEMPLATE, "utf8"), { port, admin_socket: adminSocket, body_file: bodyFile });
}

/** Where the Envoy named `name` of this run puts its admin socket (a directory of mode 0700 in `workDir`). */
export function adminSocketFor(workDir: string, name: string): string {
  const dir = path.join(workDir, `admin-${name}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return path.join(dir, "admin.sock");
}

/** Starts Envoy on a config written into `workDir`; resolves once admin /ready answers on its socket. */
export async function startEnvoy(options: {
  name: string;
  config: string;
  workDir: string;
  port: number;
  adminSocket: string;
  concurrency: number;
}): Promise<BenchEnvoy> {
  const configPath = path.join(options.workDir, `envoy-${options.name}.yaml`);
  writeFileSync(configPath, options.config);
  const process: RunningProcess = await startProcess({
    name: `envoy:${options.name}`,
    command: tools.envoy(),
    args: ["-c", configPath, "--concurrency", String(options.concurrency), "--disable-hot-restart", "-l", "warning"],
    ready: { check: () => adminReady(options.adminSocket) },
    timeoutMs: 30_000,
  });
  return {
    name: options.name,
    url: `http://127.0.0.1:${options.port}`,
    adminSocket: options.adminSocket,
    pid: process.child.pid!,
    stop: () => process.stop(),
  };
}

/** Starts one variant of the sidecar on free ports. */
export async function startVariant(options: {
  variant: Variant;
  /** Names its files and admin socket (default the variant): one variant may run more than once. */
  name?: string;
  sidecarConfigPath: string;
  workDir: string;
  bodyFile?: string;
  upstreamPort?: number;
  wasmFloor?: WasmFloor;
  concurrency: number;
}): Promise<BenchEnvoy> {
  const name = options.name ?? options.variant;
  const port = await freePort();
  const adminSocket = adminSocketFor(options.workDir, name);
  const config = deriveVariant(readFileSync(options.sidecarConfigPath, "utf8"), options.variant, {
    port,
    adminSocket,
    accessLogPath: path.join(options.workDir, `access-${name}.log`),
    bodyFile: options.bodyFile,
    upstreamPort: options.upstreamPort,
    wasmFloor: options.wasmFloor,
  });
  return startEnvoy({ name, config, workDir: options.workDir, port, adminSocket, concurrency: options.concurrency });
}
