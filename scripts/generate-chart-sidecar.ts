// Generates the Helm chart's copies of the project's own sources, so the chart and the rest of the
// project cannot drift apart:
//
//   deploy/helm/hexr/files/sidecar.yaml.tpl   envoy/sidecar.yaml with every {{placeholder}} mapped to
//                                             a Helm value or helper (rendered with `tpl` by
//                                             templates/sidecar-configmap.yaml)
//   deploy/helm/hexr/files/policy/...         policy/*.rego and policy/system/*.rego, tests left out
//   deploy/helm/hexr/files/contract.json      contract/contract.json (OPA's data.hexr.contract)
//
//   npx tsx scripts/generate-chart-sidecar.ts           write them
//   npx tsx scripts/generate-chart-sidecar.ts --check   exit 1 when any of them is stale (tests, CI)
//
// Scalar placeholders (ports, paths, host names) map to Helm expressions below. The fragments that
// only stack/render.ts knows how to build (the SPIRE SDS identity: TLS contexts, remote JWKS, the
// SPIRE agent and OIDC clusters; the vault routes and cluster; the LLM routes, filter and clusters)
// are taken from a rendering by render.ts itself, with marker values that are then replaced by Helm
// expressions: the chart gets exactly render.ts's JSON shapes for the standard deployment shape
// (identity from SPIRE over SDS). An unmapped placeholder, a marker left over, or fragments that do
// not reassemble into render.ts's own output stop the generation.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse } from "yaml";
import { renderSidecarConfig, renderTemplate, sidecarTemplatePath, type SidecarValues } from "../stack/render.ts";
import { projectRoot } from "../support/tools.ts";

const chartDir = path.join(projectRoot, "deploy", "helm", "hexr");
const TEMPLATE_OUT = path.join(chartDir, "files", "sidecar.yaml.tpl");

// ---------------------------------------------------------------------------------------------
// 1. A probe rendering by render.ts: SPIRE identity, vault door on, one LLM provider, all markers.
// ---------------------------------------------------------------------------------------------
const M = {
  agentSocket: "/zz-spire/agent.sock",
  sdsSvid: "zz-sds-svid",
  jwksUrl: "http://zz-jwks-host.invalid:64999/zz-jwks-path",
  jwksHost: "zz-jwks-host.invalid",
  jwksPort: 64999,
  jwksCacheSeconds: 987654,
  injectorId: "spiffe://zz-td/zz-injector-id",
  bridgeId: "spiffe://zz-td/zz-bridge-id",
  vaultId: "spiffe://zz-td/zz-vault-id",
  vaultHost: "zz-vault-host.invalid",
  vaultSni: "zz-vault-sni.invalid",
  vaultPort: 64460,
  llmWasm: "/zz-llm.wasm",
  llmCa: "/zz-llm-ca.pem",
  llmMaxRequestBytes: 987000,
  provider: "zzprov",
  providerHost: "zzprov-host.invalid",
  providerPort: 64443,
  providerPath: "/zzprov-path/",
} as const;

const probeFilter = {
  zz_marker_filter: true,
  vault: true,
  llm: { providers: { [M.provider]: {} }, max_request_bytes: M.llmMaxRequestBytes },
};

const probe: SidecarValues = {
  nodeId: "zz-node",
  adminSocket: "/zz-admin/admin.sock",
  statsAddress: "zz-stats-address",
  statsPort: 64020,
  listenAddress: "zz-listen-address",
  agentPort: 64080,
  agentMtlsPort: 64081,
  accessLogPath: "/zz-access.log",
  injectorHost: "zz-injector-host.invalid",
  injectorPort: 64443 + 1,
  injectorSni: "zz-injector-sni.invalid",
  injectorSpiffeId: M.injectorId,
  bridgeHost: "zz-bridge-host.invalid",
  bridgePort: 64090,
  bridgeSpiffeId: M.bridgeId,
  wasmPath: "/zz-exchange.wasm",
  filterConfiguration: probeFilter,
  jwtIssuer: "zz-issuer",
  jwtAudience: "zz-audience",
  jwtMaxLifetimeSeconds: 97531,
  mtlsMaxConnectionSeconds: 97532,
  identity: { source: "spire", agentSocket: M.agentSocket, spiffeId: M.sdsSvid, jwksUrl: M.jwksUrl, jwksCacheSeconds: M.jwksCacheSeconds },
  vault: { host: M.vaultHost, port: M.vaultPort, sni: M.vaultSni, spiffeId: M.vaultId },
  metadataListeners: [],
  llm: { wasmPath: M.llmWasm, providers: { [M.provider]: `https://${M.providerHost}:${M.providerPort}${M.providerPath}` } as never, caFile: M.llmCa },
};

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const probeText = renderSidecarConfig(probe);
const probeDoc = parse(probeText) as Json;

const listeners: Json[] = probeDoc.static_resources.listeners;
const clusters: Json[] = probeDoc.static_resources.clusters;
const agentHttp = listeners.find((l) => l.name === "agent_http")!;
const agentMtls = listeners.find((l) => l.name === "agent_mtls")!;
const hcm = agentHttp.filter_chains[0].filters[0].typed_config;
const routes: Json[] = hcm.route_config.virtual_hosts[0].routes;
const httpFilters: Json[] = hcm.http_filters;
const jwtProvider = httpFilters.find((f) => f.name === "envoy.filters.http.jwt_authn")!.typed_config.providers.jwt_svid;
const clusterNamed = (name: string) => {
  const found = clusters.find((c) => c.name === name);
  if (!found) throw new Error(`render.ts's probe rendering has no cluster ${name}`);
  return found;
};

// The fragments, as render.ts formats them (a JSON value per line, indented as in the template).
const routeLine = (route: object) => `              - ${JSON.stringify(route)}\n`;
const clusterLine = (cluster: object) => `  - ${JSON.stringify(cluster)}\n`;
const filterLine = (filter: object) => `          - ${JSON.stringify(filter)}\n`;

const wasmFilterIndex = httpFilters.findIndex((f) => f.name === "envoy.filters.http.wasm");
const llmFilter = httpFilters[wasmFilterIndex + 1];
const isLlmRoute = (r: Json) => r.typed_per_filter_config && llmFilter && llmFilter.name in r.typed_per_filter_config;
const vaultCluster = clusters.find((c) => routes.some((r) => r.route?.cluster === c.name && !isLlmRoute(r)));
if (!vaultCluster) throw new Error("render.ts's probe rendering has no vault cluster");
const vaultRoutes = routes.filter((r) => r.route?.cluster === vaultCluster.name);
const llmRoutes = routes.filter(isLlmRoute);
const llmClusters = clusters.filter((c) => llmRoutes.some((r) => r.route?.cluster === c.name));
const fixedClusters = new Set(["sidecar_admin", "hexr_injector", "hexr_bridge", vaultCluster.name, ...llmClusters.map((c) => c.name)]);
const identityClusters = clusters.filter((c) => !fixedClusters.has(c.name));
if (identityClusters.length === 0) throw new Error("render.ts's probe rendering has no identity (SPIRE) clusters");
if (llmRoutes.length !== 2 || llmClusters.length !== 1) throw new Error(`expected the usage route and one provider route: ${llmRoutes.length} routes, ${llmClusters.length} clusters`);
const [usageRoute, providerRoute] = llmRoutes;

const probeFragments = {
  jwks_source: `remote_jwks: ${JSON.stringify(jwtProvider.remote_jwks)}`,
  listener_tls_context: JSON.stringify(agentMtls.filter_chains[0].transport_socket.typed_config.common_tls_context),
  injector_tls_context: JSON.stringify(clusterNamed("hexr_injector").transport_socket.typed_config.common_tls_context),
  bridge_tls_context: JSON.stringify(clusterNamed("hexr_bridge").transport_socket.typed_config.common_tls_context),
  identity_clusters: identityClusters.map(clusterLine).join(""),
  vault_routes: vaultRoutes.map(routeLine).join(""),
  vault_cluster: clusterLine(vaultCluster),
  llm_routes: llmRoutes.map(routeLine).join(""),
  llm_filter: filterLine(llmFilter),
  llm_clusters: llmClusters.map(clusterLine).join(""),
};
// With SPIRE's keys jwt_authn keeps no cache (a cached token would outlive its key's removal).
const JWT_CACHE_SPIRE = "# no JWT cache: every token is checked against the current keys (SPIRE rotates them)";

// The drift guard: these fragments and the probe's scalars, put into the template, must give what
// render.ts gave (compared as YAML documents: comments aside, every value).
const probeScalars = {
  node_id: probe.nodeId, admin_socket: probe.adminSocket, stats_address: probe.statsAddress, stats_port: probe.statsPort,
  listen_address: probe.listenAddress, agent_port: probe.agentPort, agent_mtls_port: probe.agentMtlsPort,
  access_log_path: probe.accessLogPath, exchange_path: "/exchange", aws_credentials_path: "/exchange", revocation_path: "/exchange",
  trap_path: "/exchange", injector_host: probe.injectorHost, injector_port: probe.injectorPort, injector_sni: probe.injectorSni,
  injector_cluster: "hexr_injector", l2_cluster: "hexr_bridge", bridge_host: probe.bridgeHost, bridge_port: probe.bridgePort,
  wasm_path: probe.wasmPath, filter_configuration: JSON.stringify(JSON.stringify(probeFilter)), jwt_issuer: probe.jwtIssuer,
  jwt_audience: probe.jwtAudience, jwt_max_lifetime: "97531s", mtls_max_connection_duration: "97532s", metadata_listeners: "",
  jwt_cache: JWT_CACHE_SPIRE,
};
const template = readFileSync(sidecarTemplatePath, "utf8");
const reassembled = parse(renderTemplate(template, { ...probeScalars, ...probeFragments }));
if (!isDeepStrictEqual(reassembled, probeDoc)) {
  throw new Error("the fragments taken from render.ts do not reassemble into its own rendering: stack/render.ts or envoy/sidecar.yaml changed shape; update scripts/generate-chart-sidecar.ts");
}

// ---------------------------------------------------------------------------------------------
// 2. Markers → Helm expressions (inside the `tpl` context: `$` is the chart's root).
// ---------------------------------------------------------------------------------------------
const h = (expr: string) => `{{ ${expr} }}`;
const filterJsonMarker = JSON.stringify(JSON.stringify(probeFilter));
const bufferRoom = (providerRoute.typed_per_filter_config["envoy.filters.http.buffer"].buffer.max_request_bytes as number) - M.llmMaxRequestBytes;

/** Replaces markers, longest first, and fails on any marker left over. */
function helmify(text: string, replacements: [string, string][]): string {
  let out = text;
  for (const [marker, expr] of [...replacements].sort((a, b) => b[0].length - a[0].length)) out = out.split(marker).join(expr);
  const left = out.match(/zz[a-z_-]*|6444[0-9]|64460|64999|987[0-9]{3,4}/);
  if (left) throw new Error(`a marker is left over in a fragment: ${left[0]} in ${out.slice(0, 200)}`);
  return out;
}

const common: [string, string][] = [
  [M.agentSocket, h(`include "hexr.spire.agentSocket" $`)],
  [M.sdsSvid, h(`$.Values.sidecar.envoy.sdsSvidName`)],
  [M.jwksUrl, h(`include "hexr.spire.jwksUri" $`)],
  [M.jwksHost, h(`include "hexr.spire.jwksHost" $`)],
  [String(M.jwksPort), h(`include "hexr.spire.jwksPort" $`)],
  [`${M.jwksCacheSeconds}s`, `${h(`$.Values.spire.oidcDiscovery.jwksRefreshSeconds`)}s`],
  [M.injectorId, h(`include "hexr.injector.spiffeId" $`)],
  [M.bridgeId, h(`include "hexr.bridge.spiffeId" $`)],
  [M.vaultId, h(`include "hexr.vault.spiffeId" $`)],
  [M.vaultHost, h(`include "hexr.vault.host" $`)],
  [M.vaultSni, h(`include "hexr.vault.host" $`)],
  [String(M.vaultPort), h(`$.Values.vault.service.port`)],
  [filterJsonMarker, h(`include "hexr.sidecar.filterConfigJson" $ | toJson`)],
  [M.llmWasm, h(`$.Values.sidecar.envoy.llmWasmPath`)],
  [M.llmCa, h(`$.Values.sidecar.llm.caFile`)],
];
const provider: [string, string][] = [
  [`${M.providerHost}:${M.providerPort}`, h(`$p.authority`)],
  [M.providerHost, h(`$p.host`)],
  [String(M.providerPort), h(`$p.port`)],
  [M.providerPath, h(`$p.path`)],
  [String(M.llmMaxRequestBytes + bufferRoom), h(`add (include "hexr.sidecar.llmMaxRequestBytes" $ | atoi) ${bufferRoom}`)],
  [M.provider, h(`$name`)],
];

/** A line fragment that exists only when `cond` (a helper answering "true"). */
const when = (cond: string, body: string) => `{{- if eq (include "${cond}" $) "true" }}\n${body}{{- end }}`;
const forEachProvider = (body: string) => `{{- range $name, $p := (include "hexr.sidecar.llmUpstreams" $ | fromJson) }}\n${body}{{- end }}`;

const fragments: Record<string, string> = {
  jwks_source: helmify(probeFragments.jwks_source, common),
  jwt_cache: JWT_CACHE_SPIRE,
  listener_tls_context: helmify(probeFragments.listener_tls_context, common),
  injector_tls_context: helmify(probeFragments.injector_tls_context, common),
  bridge_tls_context: helmify(probeFragments.bridge_tls_context, common),
  identity_clusters: helmify(probeFragments.identity_clusters, common).replace(/\n$/, ""),
  vault_routes: when("hexr.sidecar.vaultDoor", helmify(probeFragments.vault_routes, common)),
  vault_cluster: when("hexr.sidecar.vaultDoor", helmify(probeFragments.vault_cluster, common)),
  llm_routes: when("hexr.sidecar.llmRoute",
    helmify(routeLine(usageRoute), common) + forEachProvider(helmify(routeLine(providerRoute), [...common, ...provider]))),
  llm_filter: when("hexr.sidecar.llmRoute", helmify(probeFragments.llm_filter, common)),
  llm_clusters: when("hexr.sidecar.llmRoute", forEachProvider(helmify(probeFragments.llm_clusters, [...common, ...provider]))),
};

// Every placeholder of envoy/sidecar.yaml, and where its value comes from in the chart.
const scalars: Record<string, string> = {
  node_id: h(`$.Values.sidecar.envoy.nodeId`),
  admin_socket: h(`$.Values.sidecar.envoy.adminSocket`),
  stats_address: h(`$.Values.sidecar.envoy.statsAddress`),
  stats_port: h(`$.Values.sidecar.envoy.statsPort`),
  listen_address: h(`$.Values.sidecar.envoy.listenAddress`),
  agent_port: h(`$.Values.sidecar.envoy.agentPort`),
  agent_mtls_port: h(`$.Values.sidecar.envoy.agentMtlsPort`),
  access_log_path: h(`$.Values.sidecar.envoy.accessLogPath`),
  exchange_path: h(`include "hexr.sidecar.exchangePath" $`),
  aws_credentials_path: h(`include "hexr.sidecar.awsCredentialsPath" $`),
  revocation_path: h(`include "hexr.sidecar.revocationPath" $`),
  trap_path: h(`include "hexr.sidecar.trapPath" $`),
  injector_host: h(`include "hexr.injector.host" $`),
  injector_port: h(`$.Values.credentialInjector.service.port`),
  injector_sni: h(`include "hexr.injector.host" $`),
  injector_cluster: h(`include "hexr.sidecar.injectorCluster" $`),
  l2_cluster: h(`include "hexr.sidecar.l2Cluster" $`),
  bridge_host: h(`include "hexr.bridge.host" $`),
  bridge_port: h(`$.Values.bridge.service.port`),
  wasm_path: h(`$.Values.sidecar.envoy.wasmPath`),
  filter_configuration: h(`include "hexr.sidecar.filterConfigJson" $ | toJson`),
  jwt_issuer: h(`include "hexr.jwt.issuer" $`),
  jwt_audience: h(`$.Values.spire.jwt.audience`),
  jwt_max_lifetime: `${h(`$.Values.spire.jwt.maxLifetimeSeconds`)}s`,
  mtls_max_connection_duration: `${h(`$.Values.sidecar.envoy.mtlsMaxConnectionSeconds`)}s`,
  // The metadata listeners serve ONE static identity each: per pod, not in a shared ConfigMap.
  metadata_listeners: "",
};

const mapping = { ...scalars, ...fragments };
const placeholders = new Set([...template.matchAll(/\{\{([a-z0-9_]+)\}\}/g)].map((m) => m[1]));
const unmapped = [...placeholders].filter((name) => !(name in mapping));
if (unmapped.length > 0) {
  throw new Error(`envoy/sidecar.yaml has placeholders the chart does not map: ${unmapped.join(", ")} (add them to scripts/generate-chart-sidecar.ts)`);
}
const unused = Object.keys(mapping).filter((name) => !placeholders.has(name));
if (unused.length > 0) throw new Error(`scripts/generate-chart-sidecar.ts maps placeholders envoy/sidecar.yaml no longer has: ${unused.join(", ")}`);
if (template.replace(/\{\{[a-z0-9_]+\}\}/g, "").includes("{{")) {
  throw new Error("envoy/sidecar.yaml contains {{ that is not a placeholder: it would be read as a Helm action");
}

const header =
  "{{- /* GENERATED by scripts/generate-chart-sidecar.ts from envoy/sidecar.yaml (and stack/render.ts's fragments)." +
  " Do not edit: run `npx tsx scripts/generate-chart-sidecar.ts`; `--check` fails when this file is stale. */ -}}\n";
const sidecarTpl = header + template.replace(/\{\{([a-z0-9_]+)\}\}/g, (_, name: string) => mapping[name]!);

// ---------------------------------------------------------------------------------------------
// 3. Policies and the contract, copied as they are.
// ---------------------------------------------------------------------------------------------
const outputs = new Map<string, string>([[TEMPLATE_OUT, sidecarTpl]]);
const policyDir = path.join(projectRoot, "policy");
function copyRego(dir: string, rel: string) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const relPath = path.join(rel, entry.name);
    if (entry.isDirectory()) copyRego(path.join(dir, entry.name), relPath);
    else if (entry.name.endsWith(".rego") && !entry.name.endsWith("_test.rego")) {
      outputs.set(path.join(chartDir, "files", "policy", relPath), readFileSync(path.join(dir, entry.name), "utf8"));
    }
  }
}
copyRego(policyDir, "");
outputs.set(path.join(chartDir, "files", "contract.json"), readFileSync(path.join(projectRoot, "contract", "contract.json"), "utf8"));

// Stale copies of policies that no longer exist are stale too.
const policyOut = path.join(chartDir, "files", "policy");
function listRego(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listRego(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}
const extra = listRego(policyOut).filter((file) => !outputs.has(file));

const check = process.argv.includes("--check");
const stale = [...outputs].filter(([file, text]) => !existsSync(file) || readFileSync(file, "utf8") !== text).map(([file]) => file);
if (check) {
  if (stale.length > 0 || extra.length > 0) {
    for (const file of stale) console.error(`stale: ${path.relative(projectRoot, file)}`);
    for (const file of extra) console.error(`not generated from policy/: ${path.relative(projectRoot, file)}`);
    console.error("run: npx tsx scripts/generate-chart-sidecar.ts");
    process.exit(1);
  }
  console.log(`up to date: ${outputs.size} files`);
} else {
  if (extra.length > 0) throw new Error(`remove these files (no policy/ source): ${extra.join(", ")}`);
  for (const file of stale) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, outputs.get(file)!);
    console.log(`wrote ${path.relative(projectRoot, file)}`);
  }
  if (stale.length === 0) console.log(`up to date: ${outputs.size} files`);
}
