// The Envoys the scenarios compare the sidecar with. Each one is derived from the sidecar's own
// rendered configuration (the file the stack runs), so it keeps the very same listener: address,
// HTTP connection manager settings, access log, and whichever of the sidecar's HTTP filters the
// scenario keeps. Only the filter list, the routes and the ports change:
//
//   floor              buffer + router; every path answered by direct_response with a credential-sized body
//   floor-jwt          jwt_authn + buffer + router, same direct_response: what verifying the JWT-SVID adds
//   pass-through-wasm  the sidecar's filter chain unchanged; non-exchange paths go to a trivial upstream
//   pass-through-plain the same without the wasm filter
//   pass-through-skip  a what-if: the full chain, the wasm filter disabled on the non-exchange route
//                      (a per-route FilterConfig), so Envoy never calls into the VM for that traffic
//   no-filter          jwt_authn + router; /exchange goes straight to the injector cluster, with the
//                      verified SPIFFE ID in x-hexr-spiffe-id (the injector requires it): what every
//                      request costs if the proxy caches nothing
//   sidecar-jwt-cache  a what-if: the sidecar unchanged but for jwt_authn's cache of verified tokens
//                      (an agent presents the same JWT-SVID on every request until it rotates it).
//                      The cache is only consulted for a rule naming the provider, so the rule
//                      becomes requires_any {jwt_svid, allow_missing_or_failed}: the same outcome
//                      (a missing or bad token still reaches the filter, which answers 401)
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { renderTemplate } from "../stack/render.ts";
import { freePort, startProcess, type RunningProcess } from "../support/processes.ts";
import { tools } from "../support/tools.ts";

export type Variant =
  | "floor" | "floor-jwt" | "pass-through-wasm" | "pass-through-plain" | "pass-through-skip" | "no-filter" | "sidecar-jwt-cache";

const UPSTREAM_TEMPLATE = path.join(path.dirname(fileURLToPath(import.meta.url)), "envoy", "upstream.yaml");
const UPSTREAM_CLUSTER = "bench_upstream";
const JWT_AUTHN = "envoy.filters.http.jwt_authn";
const WASM = "envoy.filters.http.wasm";
const BUFFER = "envoy.filters.http.buffer";
const ROUTER = "envoy.filters.http.router";

export interface BenchEnvoy {
  readonly name: string;
  /** http://127.0.0.1:PORT of its listener. */
  readonly url: string;
  readonly adminUrl: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface VariantValues {
  port: number;
  adminPort: number;
  accessLogPath: string;
  /** The direct_response body (floor variants): a real credential body. */
  bodyFile: string;
  /** The trivial upstream (pass-through variants). */
  upstreamPort?: number;
}

/** The sidecar's rendered config, changed into `variant` (YAML text). */
export function deriveVariant(sidecarYaml: string, variant: Variant, values: VariantValues): string {
  const config = YAML.parse(sidecarYaml);
  config.node.id = `bench-${variant}`;
  config.admin.address.socket_address.port_value = values.adminPort;
  // The plain agent listener only: the mTLS one would collide with the sidecar's own port.
  const listener = config.static_resources.listeners.find((l: { name: string }) => l.name === "agent_http");
  config.static_resources.listeners = [listener];
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
      // The buffer filter is what lets Envoy answer a POST from config on a kept-alive
      // connection: with the router alone, direct_response answers at the request headers, before
      // the body, and Envoy then closes the connection (a TCP handshake per request). The sidecar
      // reads the whole body before it answers, too.
      hcm.http_filters = variant === "floor" ? [filter(BUFFER), filter(ROUTER)] : [filter(JWT_AUTHN), filter(BUFFER), filter(ROUTER)];
      virtualHost.routes = [directResponse(values.bodyFile)];
      break;
    case "pass-through-wasm":
    case "pass-through-plain":
    case "pass-through-skip": {
      if (values.upstreamPort === undefined) throw new Error("pass-through needs the upstream's port");
      if (variant === "pass-through-plain") hcm.http_filters = hcm.http_filters.filter((f: { name: string }) => f.name !== WASM);
      // The sidecar's catch-all (404 for anything but the exchange path, buffer disabled) now
      // forwards instead; the exchange route stays as it is.
      const catchAll = virtualHost.routes.find((r: { match: { prefix?: string } }) => r.match.prefix === "/");
      delete catchAll.direct_response;
      delete catchAll.response_headers_to_add;
      catchAll.route = { cluster: UPSTREAM_CLUSTER };
      if (variant === "pass-through-skip") {
        catchAll.typed_per_filter_config[WASM] = { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", disabled: true };
      }
      config.static_resources.clusters.push(staticCluster(UPSTREAM_CLUSTER, values.upstreamPort));
      break;
    }
    case "sidecar-jwt-cache": {
      const jwt = filter(JWT_AUTHN).typed_config;
      for (const provider of Object.values(jwt.providers) as { jwt_cache_config?: unknown }[]) {
        provider.jwt_cache_config = { jwt_cache_size: 1000 };
      }
      const providerNames = Object.keys(jwt.providers);
      jwt.rules = [{
        match: { prefix: "/" },
        requires: { requires_any: { requirements: [...providerNames.map((name) => ({ provider_name: name })), { allow_missing_or_failed: {} }] } },
      }];
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

export function upstreamConfig(port: number, adminPort: number, bodyFile: string): string {
  return renderTemplate(readFileSync(UPSTREAM_TEMPLATE, "utf8"), { port, admin_port: adminPort, body_file: bodyFile });
}

/** Starts Envoy on a config written into `workDir`; resolves once admin /ready answers. */
export async function startEnvoy(options: {
  name: string;
  config: string;
  workDir: string;
  port: number;
  adminPort: number;
  concurrency: number;
}): Promise<BenchEnvoy> {
  const configPath = path.join(options.workDir, `envoy-${options.name}.yaml`);
  writeFileSync(configPath, options.config);
  const adminUrl = `http://127.0.0.1:${options.adminPort}`;
  const process: RunningProcess = await startProcess({
    name: `envoy:${options.name}`,
    command: tools.envoy(),
    args: ["-c", configPath, "--concurrency", String(options.concurrency), "--disable-hot-restart", "-l", "warning"],
    ready: { url: `${adminUrl}/ready` },
    timeoutMs: 30_000,
  });
  return {
    name: options.name,
    url: `http://127.0.0.1:${options.port}`,
    adminUrl,
    pid: process.child.pid!,
    stop: () => process.stop(),
  };
}

/** Starts one variant of the sidecar on free ports. */
export async function startVariant(options: {
  variant: Variant;
  sidecarConfigPath: string;
  workDir: string;
  bodyFile: string;
  upstreamPort?: number;
  concurrency: number;
}): Promise<BenchEnvoy> {
  const port = await freePort();
  const adminPort = await freePort();
  const config = deriveVariant(readFileSync(options.sidecarConfigPath, "utf8"), options.variant, {
    port,
    adminPort,
    accessLogPath: path.join(options.workDir, `access-${options.variant}.log`),
    bodyFile: options.bodyFile,
    upstreamPort: options.upstreamPort,
  });
  return startEnvoy({ name: options.variant, config, workDir: options.workDir, port, adminPort, concurrency: options.concurrency });
}
