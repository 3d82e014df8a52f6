// The Helm chart, offline: `helm lint --strict` with each values file, `helm template` with each
// one, every rendered manifest validated against the Kubernetes API's own schemas
// (kubernetes-validate, --strict) and the CRDs' spec fields against schemas of our own
// (crd-schemas.json), the seeds' values where the injector reads them, and values.schema.json
// refusing bad values.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse, parseAllDocuments, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot, tools } from "../../support/tools.ts";
import {
  KUBERNETES_VERSIONS,
  chartDir,
  configMapEntries,
  get,
  helmTemplate,
  readYaml,
  render,
  requireChart,
  run,
  valuesDir,
  valuesFiles,
  NAMESPACE,
  RELEASE,
  type Manifest,
} from "./helpers.ts";

/** The CRD kinds the chart renders: none is in kubernetes-validate's schemas; crd-schemas.json has each. */
const crdSchemas = JSON.parse(readFileSync(path.join(import.meta.dirname, "crd-schemas.json"), "utf8"));

/** The seeds' keys for the three clouds, as the seeds' users write them in their values. */
const SEED_KEYS = [
  "credentialInjector.aws.roleArn",
  "credentialInjector.gcp.workloadIdentityProvider",
  "credentialInjector.azure.tenantId",
  "credentialInjector.azure.clientId",
];

let dir: string;
beforeAll(() => {
  requireChart();
  dir = mkdtempSync(path.join(tmpdir(), "hexr-helm-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const files = valuesFiles();
const cases: Array<[string, string | undefined]> = [["chart defaults", undefined], ...files.map((file): [string, string] => [path.basename(file), file])];

describe("the values files", () => {
  it("exist: deploy/helm/values/*.yaml, one of them with every seed key", () => {
    expect(files.length, "no deploy/helm/values/*.yaml").toBeGreaterThanOrEqual(2);
    const seeded = files.filter((file) => SEED_KEYS.every((key) => typeof get(readYaml(file), key) === "string" && get(readYaml(file), key) !== ""));
    expect(seeded.map((file) => path.basename(file)), `no values file sets all of ${SEED_KEYS.join(", ")}`).not.toEqual([]);
  });
});

describe("helm lint --strict", () => {
  it("passes on the chart with its defaults", async () => {
    requireChart();
    const result = await run(tools.helm(), ["lint", "--strict", chartDir]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  it.each(files.map((file) => [path.basename(file), file]))("passes with %s", async (_name, file) => {
    requireChart();
    const result = await run(tools.helm(), ["lint", "--strict", chartDir, "--values", file]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });
});

/** Writes a rendering's manifests one per file (kubernetes-validate's messages then name the object). */
function writeManifests(label: string, manifests: Manifest[]): string[] {
  const sub = path.join(dir, label.replace(/[^a-z0-9.-]+/gi, "_"));
  rmSync(sub, { recursive: true, force: true });
  mkdirSync(sub, { recursive: true });
  const written: string[] = [];
  manifests.forEach((manifest, index) => {
    const file = path.join(sub, `${String(index).padStart(3, "0")}-${manifest.kind}-${manifest.metadata?.name}.yaml`);
    written.push(file);
    writeFileSync(file, stringify(manifest), { flag: "w" });
  });
  return written;
}

function schemaFor(manifest: Manifest): object | undefined {
  const group = manifest.apiVersion.includes("/") ? manifest.apiVersion.split("/")[0] : "";
  const schema = crdSchemas.schemas[`${group}/${manifest.kind}`];
  if (!schema) return undefined;
  // Every scrape endpoint (the Prometheus operator's monitors) has the common fields too ($defs.scrapeEndpointCommon).
  const defs = structuredClone(crdSchemas.$defs);
  const merged = structuredClone(schema);
  for (const list of group === "monitoring.coreos.com" ? ["endpoints", "podMetricsEndpoints"] : []) {
    const items = merged.properties?.spec?.properties?.[list]?.items;
    if (items) Object.assign(items.properties, defs.scrapeEndpointCommon);
  }
  return { $defs: defs, ...merged };
}

async function validateJson(items: Array<{ label: string; schema: object; instance: unknown }>): Promise<Array<{ label: string; errors: string[] }>> {
  const input = path.join(dir, `json-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(input, JSON.stringify(items));
  const result = await run("sh", ["-c", `"$0" "$1" < "$2"`, tools.python(), path.join(import.meta.dirname, "validate_json.py"), input]);
  if (result.code !== 0) throw new Error(`validate_json.py failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

describe.each(cases)("helm template with %s", (label, valuesFile) => {
  it("renders", async () => {
    requireChart();
    const rendering = await render(valuesFile);
    expect(rendering.manifests.length).toBeGreaterThan(0);
    for (const manifest of rendering.manifests) {
      expect(manifest.apiVersion, JSON.stringify(manifest).slice(0, 200)).toEqual(expect.any(String));
      expect(manifest.kind).toEqual(expect.any(String));
      expect(manifest.metadata?.name).toEqual(expect.any(String));
    }
    const names = rendering.manifests.map((m) => `${m.apiVersion}/${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`);
    expect(names.filter((name, index) => names.indexOf(name) !== index), "objects rendered twice").toEqual([]);
  });

  it.each(KUBERNETES_VERSIONS)("every core manifest is valid for Kubernetes %s (kubernetes-validate --strict); every CRD kind has a schema here", async (version) => {
    requireChart();
    const rendering = await render(valuesFile);
    const written = writeManifests(`${label}-${version}`, rendering.manifests);
    const result = await run(tools.kubernetesValidate(), ["--kubernetes-version", version, "--strict", "--quiet", ...written], { timeout: 120_000 });
    const lines = (result.stdout + result.stderr).split("\n").filter((line) => line.trim() !== "");
    const errors = lines.filter((line) => !/^WARN .* Couldn't find schema for kind (\S+) with api version (\S+) /.test(line));
    expect(errors, `kubernetes-validate ${version} (${label})`).toEqual([]);
    expect(result.code === 0 || lines.every((line) => line.startsWith("WARN")), lines.join("\n")).toBe(true);
    // The kinds it has no schema for are the CRDs, and each must have one of ours.
    const unknown = new Set<string>();
    for (const line of lines) {
      const match = /Couldn't find schema for kind (\S+) with api version (\S+) /.exec(line);
      if (match) unknown.add(`${match[2].split("/")[0]}/${match[1]}`);
    }
    const withoutSchema = [...unknown].filter((key) => !crdSchemas.schemas[key]);
    expect(withoutSchema, "kinds with no schema in kubernetes-validate nor deploy/test/crd-schemas.json").toEqual([]);
  }, 180_000);

  it("every CRD object (WasmPlugin, RequestAuthentication, ServiceMonitor, PodMonitor, …) matches its spec schema", async () => {
    requireChart();
    const rendering = await render(valuesFile);
    const items = rendering.manifests
      .map((manifest) => ({ manifest, schema: schemaFor(manifest) }))
      .filter((item) => item.schema)
      .map(({ manifest, schema }) => ({ label: `${manifest.kind}/${manifest.metadata.name}`, schema: schema!, instance: manifest }));
    if (items.length === 0) return;
    const failures = (await validateJson(items)).filter((result) => result.errors.length > 0);
    expect(failures).toEqual([]);
  });

  it("the injector's ConfigMap carries the seeds' cloud settings from the values", async () => {
    requireChart();
    const rendering = await render(valuesFile);
    const values = valuesFile ? readYaml(valuesFile) : {};
    const expected = SEED_KEYS.map((key) => [key, get(values, key)] as const).filter(([, value]) => typeof value === "string" && value !== "");
    if (expected.length === 0) return;
    const injectorText = configMapEntries(rendering.manifests)
      .filter(([manifest]) => /injector/i.test(manifest.metadata.name))
      .map(([, , value]) => value)
      .join("\n");
    expect(injectorText, "no ConfigMap named *injector* with data").not.toBe("");
    for (const [key, value] of expected) expect(injectorText.includes(value as string), `${key} = ${value} not in the injector's ConfigMap`).toBe(true);
  });
});

describe("values.schema.json", () => {
  const schemaFile = path.join(chartDir, "values.schema.json");
  let schema: any;

  beforeAll(() => {
    schema = JSON.parse(readFileSync(schemaFile, "utf8"));
  });

  /** The paths of every property whose pattern is a SPIFFE ID's (`^spiffe://…`), through $ref, oneOf, anyOf and allOf. */
  function spiffeIdPaths(node: any, at: string[] = [], depth = 0): string[][] {
    if (!node || typeof node !== "object" || depth > 20) return [];
    if (typeof node.$ref === "string" && node.$ref.startsWith("#/")) {
      const target = node.$ref.slice(2).split("/").reduce((value: any, key: string) => value?.[key], schema);
      return spiffeIdPaths(target, at, depth + 1);
    }
    const found: string[][] = [];
    if (typeof node.pattern === "string" && node.pattern.includes("spiffe:") && at.length > 0) found.push(at);
    for (const [key, child] of Object.entries(node.properties ?? {})) found.push(...spiffeIdPaths(child, [...at, key], depth + 1));
    for (const branch of [...(node.oneOf ?? []), ...(node.anyOf ?? []), ...(node.allOf ?? [])]) found.push(...spiffeIdPaths(branch, at, depth + 1));
    const unique = new Map(found.map((p) => [p.join("."), p]));
    return [...unique.values()];
  }

  function nest(at: string[], value: unknown): Record<string, unknown> {
    return at.reduceRight<any>((inner, key) => ({ [key]: inner }), value);
  }

  async function templateWith(values: Record<string, unknown>, base?: string) {
    const file = path.join(dir, `bad-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify(values));
    return helmTemplate(base, ["--values", file]);
  }

  it("refuses keys it does not know at the top level", async () => {
    expect(schema.additionalProperties).toBe(false);
    const result = await templateWith({ credentialInjectr: { aws: { roleArn: "arn:aws:iam::123456789012:role/x" } } });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/credentialInjectr/);
  });

  it("refuses a malformed SPIFFE ID, naming the field", async () => {
    const paths = spiffeIdPaths(schema);
    expect(paths.length, "no property with a spiffe:// pattern in values.schema.json").toBeGreaterThan(0);
    const refused: string[] = [];
    for (const at of paths) {
      const result = await templateWith(nest(at, "http://hexr.local/not-a-spiffe-id"));
      refused.push(at.join("."));
      expect(result.code, `${at.join(".")} accepted a non-SPIFFE ID`).not.toBe(0);
      expect(result.stderr).toContain(at[at.length - 1]);
    }
    // The services' own IDs and the sidecar's, at least.
    expect(refused.length, refused.join(", ")).toBeGreaterThanOrEqual(2);
  });

  it("refuses a value of the wrong type for a seed key", async () => {
    const result = await templateWith(nest(["credentialInjector", "aws", "roleArn"], 42));
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/roleArn/);
  });

  it("refuses a missing required value, naming it", async () => {
    const required: string[] = schema.required ?? [];
    expect(required.length, "values.schema.json requires nothing at the top level").toBeGreaterThan(0);
    // A null in a values file removes the key from the chart's defaults.
    const result = await templateWith({ [required[0]]: null });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(required[0]);
  });

  it("refuses a malformed AWS role ARN in the seeds' values file", async () => {
    const seeded = files.find((file) => typeof get(readYaml(file), "credentialInjector.aws.roleArn") === "string");
    if (!seeded) return;
    const result = await templateWith(nest(["credentialInjector", "aws", "roleArn"], "role/hexr-injector"), seeded);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/roleArn/);
  });
});

describe("the NetworkPolicies, as rendered", () => {
  const podLabels = (manifest: Manifest): Record<string, string> => manifest.spec?.template?.metadata?.labels ?? {};
  const selects = (selector: any, labels: Record<string, string>) =>
    Object.entries(selector?.matchLabels ?? {}).every(([key, value]) => labels[key] === value) && !(selector?.matchExpressions?.length > 0);

  it.each(cases)("deny by default, and let only the injector reach OPA (%s)", async (_label, valuesFile) => {
    const { manifests } = await render(valuesFile);
    const policies = manifests.filter((m) => m.kind === "NetworkPolicy");
    if (policies.length === 0) return;
    const workloads = manifests.filter((m) => ["Deployment", "StatefulSet", "DaemonSet"].includes(m.kind));
    // Every workload of the release is selected by some policy with Ingress (so default-deny holds).
    for (const workload of workloads) {
      expect(policies.some((p) => (p.spec.policyTypes ?? ["Ingress"]).includes("Ingress") && selects(p.spec.podSelector, podLabels(workload))), `${workload.kind}/${workload.metadata.name} has no ingress policy`).toBe(true);
    }
    const opa = workloads.find((w) => /opa/.test(w.metadata.name));
    const injector = workloads.find((w) => /injector/.test(w.metadata.name));
    if (!opa || !injector) return;
    const peers = policies.filter((p) => selects(p.spec.podSelector, podLabels(opa))).flatMap((p) => (p.spec.ingress ?? []).flatMap((rule: any) => rule.from ?? [{ everyone: true }]));
    expect(peers.length).toBeGreaterThan(0);
    for (const peer of peers) {
      expect(Object.keys(peer).sort(), JSON.stringify(peer)).toEqual(["podSelector"]);
      expect(Object.keys(peer.podSelector.matchLabels ?? {}).length).toBeGreaterThan(0);
      const reached = workloads.filter((w) => selects(peer.podSelector, podLabels(w))).map((w) => w.metadata.name);
      expect(reached, JSON.stringify(peer)).toEqual([injector.metadata.name]);
    }
  });
});

describe("the validators are not a formality", () => {
  it("kubernetes-validate --strict refuses an unknown field; the CRD schemas refuse a misspelt one", async () => {
    const file = path.join(dir, "bad-deployment.yaml");
    writeFileSync(
      file,
      stringify({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "x" },
        spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "i:1", readOnlyRootFileSystem: true }] } } },
      }),
    );
    const result = await run(tools.kubernetesValidate(), ["--kubernetes-version", KUBERNETES_VERSIONS[0], "--strict", "--quiet", file]);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/readOnlyRootFileSystem/);

    const plugin = { apiVersion: "extensions.istio.io/v1alpha1", kind: "WasmPlugin", metadata: { name: "x" }, spec: { url: "oci://r/x:1", pluginConfg: {} } } as Manifest;
    const [checked] = await validateJson([{ label: "WasmPlugin/x", schema: schemaFor(plugin)!, instance: plugin }]);
    expect(checked.errors.join("\n")).toMatch(/pluginConfg/);
  });
});

/** `helm template` with a values file and extra flags (--set, more --values), parsed; throws with Helm's message. */
async function renderWith(valuesFile: string | undefined, extra: string[]): Promise<Manifest[]> {
  const result = await helmTemplate(valuesFile, extra);
  if (result.code !== 0) throw new Error(`helm template ${extra.join(" ")} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => document.toJSON()).filter((value) => value) as Manifest[];
}

/** Helm's merge of a values file over the chart's values (maps merge, null removes a key). */
function mergeValues(base: any, over: any): any {
  if (over === undefined) return base;
  if (over === null || typeof over !== "object" || Array.isArray(over) || base === null || typeof base !== "object" || Array.isArray(base)) return over;
  const out: any = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === null) delete out[key];
    else out[key] = mergeValues(base[key], value);
  }
  return out;
}

/** The stats_config block of an Envoy bootstrap that is a template (placeholders elsewhere make the whole file unparsable). */
function statsConfigOf(file: string): any {
  const block = /^stats_config:\n(?:[ ].*\n|\n(?=[ ]))+/m.exec(readFileSync(file, "utf8"));
  if (!block) throw new Error(`${file}: no stats_config block`);
  return parse(block[0]).stats_config;
}

describe("Istio: routes for the vault door and the LLM route, TLS origination, the buffer filter (values/istio.yaml)", () => {
  const istioFile = path.join(valuesDir, "istio.yaml");
  const contract = JSON.parse(readFileSync(path.join(projectRoot, "contract", "contract.json"), "utf8"));
  const values = () => mergeValues(readYaml(path.join(chartDir, "values.yaml")), readYaml(istioFile));
  const sidecarHost = `${RELEASE}-sidecar.${NAMESPACE}.svc.cluster.local`;
  const vaultHost = `${RELEASE}-vault.${NAMESPACE}.svc.cluster.local`;
  const ofKind = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);
  const virtualService = (manifests: Manifest[]) => ofKind(manifests, "VirtualService").find((m) => m.spec.hosts.includes(sidecarHost));

  /** The VirtualService route a request takes (Istio's first-match order), or undefined (Envoy's 404). */
  function routeFor(vs: Manifest, port: number, requestPath: string): any {
    const uriMatches = (uri: any) =>
      uri.exact !== undefined ? requestPath === uri.exact : uri.prefix !== undefined ? requestPath.startsWith(uri.prefix) : new RegExp(`^(?:${uri.regex})$`).test(requestPath);
    return vs.spec.http.find((route: any) => (route.match ?? [{}]).some((m: any) => (m.port === undefined || m.port === port) && (!m.uri || uriMatches(m.uri))));
  }

  it("routes every vault prefix of the contract to the vault (path-separated, 10s, no retries) on the agent port only", async () => {
    const manifests = (await render(istioFile)).manifests;
    const v = values();
    const vs = virtualService(manifests);
    expect(vs, `no VirtualService for ${sidecarHost}`).toBeDefined();
    const prefixes = [contract.vault.secrets_path, contract.vault.audit_path];
    const agentPort = v.sidecar.istio.agentPort;
    for (const prefix of prefixes) {
      for (const requestPath of [prefix, `${prefix}/`, `${prefix}/some-name`, `${prefix}/${contract.vault.batch_name}`]) {
        const route = routeFor(vs!, agentPort, requestPath);
        expect(route?.route, `${requestPath} on ${agentPort}`).toEqual([{ destination: { host: vaultHost, port: { number: v.vault.service.port } } }]);
        expect(route.timeout).toBe("10s");
        expect(route.retries).toEqual({ attempts: 0 });
        expect(route.rewrite, "the vault door's requests go on unchanged").toBeUndefined();
        // The vault door is the exchange filter's, on the agent port: not on the LLM port.
        expect(routeFor(vs!, v.sidecar.istio.llmPort, requestPath), `${requestPath} routed on the LLM port`).toBeUndefined();
      }
      // path_separated_prefix: not a longer segment.
      expect(routeFor(vs!, agentPort, `${prefix}x`), `${prefix}x`).toBeUndefined();
    }
    // The vault's DestinationRule (ISTIO_MUTUAL with its SPIFFE ID) covers the destination.
    const vaultRule = ofKind(manifests, "DestinationRule").find((m) => m.spec.host === vaultHost);
    expect(vaultRule?.spec.trafficPolicy.tls.mode).toBe("ISTIO_MUTUAL");
    expect(vaultRule?.spec.trafficPolicy.tls.subjectAltNames).toEqual([`spiffe://${v.spire.trustDomain}/hexr-system/vault`]);
  });

  it("routes every configured LLM provider, rewritten to its base URL from values, and nothing else on the LLM port", async () => {
    const manifests = (await render(istioFile)).manifests;
    const v = values();
    const vs = virtualService(manifests)!;
    const llmPort = v.sidecar.istio.llmPort;
    const providers = Object.keys(v.sidecar.filter.llm.providers).sort();
    expect(providers.length).toBeGreaterThan(0);
    for (const name of providers) {
      const url = new URL(v.sidecar.llm.upstreams[name]);
      const route = routeFor(vs, llmPort, `${contract.llm.path}/${name}/v1/chat/completions`);
      expect(route, `no route for ${name}`).toBeDefined();
      expect(route.match).toEqual([{ port: llmPort, uri: { prefix: `${contract.llm.path}/${name}/` } }]);
      expect(route.rewrite).toEqual({ uri: url.pathname.replace(/\/?$/, "/"), authority: url.host });
      expect(route.route).toEqual([{ destination: { host: url.hostname, port: { number: v.sidecar.istio.llmEgress.originationPort } } }]);
      expect(route.timeout).toBe("0s");
      expect(route.retries).toEqual({ attempts: 0 });
      expect(routeFor(vs, v.sidecar.istio.agentPort, `${contract.llm.path}/${name}/x`), `${name} routed on the agent port`).toBeUndefined();
    }
    // Providers the filter does not serve have no route (azure_openai has no URL in the defaults).
    const routed = vs.spec.http.filter((r: any) => r.rewrite).map((r: any) => r.match[0].uri.prefix);
    expect(routed.sort()).toEqual(providers.map((name) => `${contract.llm.path}/${name}/`).sort());
    // The usage path is the LLM filter's; if it is not answered, the plain sidecar's JSON 503.
    const usage = routeFor(vs, llmPort, contract.llm.usage_path);
    expect(usage?.directResponse?.status).toBe(503);
    expect(JSON.parse(usage.directResponse.body.string).error.type).toBe("CredentialError");
  });

  it("pairs each provider host's ServiceEntry (HTTP port → targetPort 443) with a DestinationRule originating TLS (SNI, SAN)", async () => {
    const manifests = (await render(istioFile)).manifests;
    const v = values();
    const vs = virtualService(manifests)!;
    const destinations = vs.spec.http.filter((r: any) => r.rewrite).map((r: any) => r.route[0].destination);
    const hosts = [...new Set(destinations.map((d: any) => d.host))].sort();
    const entries = ofKind(manifests, "ServiceEntry");
    const rules = ofKind(manifests, "DestinationRule").filter((m) => !m.spec.host.endsWith(".svc.cluster.local"));
    expect(entries.flatMap((e) => e.spec.hosts).sort(), "one ServiceEntry per provider host").toEqual(hosts);
    expect(rules.map((r) => r.spec.host).sort(), "one DestinationRule per provider host").toEqual(hosts);
    for (const destination of destinations) {
      const provider = Object.keys(v.sidecar.llm.upstreams).find((name) => v.sidecar.llm.upstreams[name] && new URL(v.sidecar.llm.upstreams[name]).hostname === destination.host)!;
      const targetPort = Number(new URL(v.sidecar.llm.upstreams[provider]).port || 443);
      const entry = entries.find((e) => e.spec.hosts.includes(destination.host))!;
      expect(entry.spec.location).toBe("MESH_EXTERNAL");
      expect(entry.spec.resolution).toBe("DNS");
      const port = entry.spec.ports.find((p: any) => p.number === destination.port.number);
      expect(port, `${destination.host}: no ServiceEntry port ${destination.port.number}`).toMatchObject({ protocol: "HTTP", targetPort });
      const rule = rules.find((r) => r.spec.host === destination.host)!;
      const level = rule.spec.trafficPolicy.portLevelSettings.find((s: any) => s.port.number === destination.port.number);
      expect(level?.tls, `${destination.host}: no TLS origination on port ${destination.port.number}`).toEqual({ mode: "SIMPLE", sni: destination.host, subjectAltNames: [destination.host] });
    }
  });

  it("inserts the buffer filter before the router on the LLM port, sized llm.max_request_bytes + 64, in each agent namespace", async () => {
    const v = values();
    const check = (manifests: Manifest[], maxRequestBytes: number) => {
      const filters = ofKind(manifests, "EnvoyFilter");
      expect(filters.map((f) => f.metadata.namespace).sort()).toEqual([...v.sidecar.namespaces].sort());
      for (const filter of filters) {
        expect(filter.spec.workloadSelector.labels).toEqual(v.sidecar.podSelector);
        const buffer = filter.spec.configPatches.filter((p: any) => p.applyTo === "HTTP_FILTER");
        expect(buffer).toHaveLength(1);
        expect(buffer[0].match).toEqual({
          context: "SIDECAR_OUTBOUND",
          listener: { portNumber: v.sidecar.istio.llmPort, filterChain: { filter: { name: "envoy.filters.network.http_connection_manager", subFilter: { name: "envoy.filters.http.router" } } } },
        });
        expect(buffer[0].patch.operation).toBe("INSERT_BEFORE");
        expect(buffer[0].patch.value.name).toBe("envoy.filters.http.buffer");
        expect(buffer[0].patch.value.typed_config).toEqual({ "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer", max_request_bytes: maxRequestBytes + 64 });
      }
      return filters;
    };
    const manifests = (await render(istioFile)).manifests;
    const [filter] = check(manifests, v.sidecar.filter.llm.max_request_bytes);
    // The provider routes' idle timeout (plain Envoy's 300s) patches routes the VirtualService names.
    const vs = virtualService(manifests)!;
    const routePatches = filter.spec.configPatches.filter((p: any) => p.applyTo === "HTTP_ROUTE");
    const llmRoutes = vs.spec.http.filter((r: any) => r.rewrite).map((r: any) => r.name).sort();
    expect(routePatches.map((p: any) => p.match.routeConfiguration.vhost.route.name).sort()).toEqual(llmRoutes);
    for (const patch of routePatches) {
      expect(patch.match.routeConfiguration.vhost.name).toBe(`${sidecarHost}:${v.sidecar.istio.llmPort}`);
      expect(patch.patch).toEqual({ operation: "MERGE", value: { route: { idle_timeout: "300s" } } });
    }
    // Computed from the value, not written in the template.
    check(await renderWith(istioFile, ["--set", "sidecar.filter.llm.max_request_bytes=2000000"]), 2_000_000);
  });

  it("renders nothing for the vault door when it is off, and nothing for the LLM route when it is off", async () => {
    const noVault = await renderWith(istioFile, ["--set", "sidecar.filter.vault=false"]);
    const vs = virtualService(noVault)!;
    expect(vs.spec.http.filter((r: any) => (r.route ?? []).some((d: any) => d.destination.host === vaultHost))).toEqual([]);
    expect(vs.spec.http.filter((r: any) => r.rewrite).length, "the LLM routes stay").toBeGreaterThan(0);
    const noVaultService = await renderWith(istioFile, ["--set", "vault.enabled=false"]);
    expect(virtualService(noVaultService)!.spec.http.filter((r: any) => (r.route ?? []).some((d: any) => d.destination.host === vaultHost))).toEqual([]);

    const noLlmFile = path.join(dir, "istio-no-llm.yaml");
    writeFileSync(noLlmFile, stringify({ sidecar: { filter: { llm: null } } }));
    const noLlm = await renderWith(istioFile, ["--values", noLlmFile]);
    for (const kind of ["ServiceEntry", "EnvoyFilter"]) expect(ofKind(noLlm, kind).map((m) => m.metadata.name), kind).toEqual([]);
    expect(ofKind(noLlm, "DestinationRule").filter((m) => !m.spec.host.endsWith(".svc.cluster.local"))).toEqual([]);
    expect(ofKind(noLlm, "WasmPlugin").map((m) => m.metadata.name)).toEqual([`${RELEASE}-exchange`]);
    const vsNoLlm = virtualService(noLlm)!;
    expect(vsNoLlm.spec.http.map((r: any) => r.name).sort()).toEqual(["vault-v1-audit", "vault-v1-secrets"]);

    const neither = await renderWith(istioFile, ["--values", noLlmFile, "--set", "sidecar.filter.vault=false"]);
    expect(ofKind(neither, "VirtualService")).toEqual([]);
  });

  it("puts the filters' stats_tags (the same as envoy/sidecar.yaml's) in a bootstrap override, and names the pod annotations", async () => {
    const manifests = (await render(istioFile)).manifests;
    const v = values();
    const expected = statsConfigOf(path.join(projectRoot, "envoy", "sidecar.yaml")).stats_tags;
    expect(expected.map((t: any) => t.tag_name)).toEqual(expect.arrayContaining(["tier", "service"]));
    const configMaps = manifests.filter((m) => m.kind === "ConfigMap" && m.metadata.name === `${RELEASE}-istio-bootstrap`);
    expect(configMaps.map((m) => m.metadata.namespace).sort(), "one per agent namespace (a pod mounts its own namespace's)").toEqual([...v.sidecar.namespaces].sort());
    for (const configMap of configMaps) {
      const bootstrap = JSON.parse(configMap.data["custom_bootstrap.json"]);
      expect(Object.keys(bootstrap)).toEqual(["stats_config"]);
      expect(bootstrap.stats_config.stats_tags).toEqual(expected);
      const annotations = JSON.parse(configMap.data["pod-annotations.json"]);
      expect(annotations["sidecar.istio.io/bootstrapOverride"]).toBe(configMap.metadata.name);
      const prefixes: string[] = JSON.parse(annotations["proxy.istio.io/config"]).proxyStatsMatcher.inclusionPrefixes;
      // Every filter metric the dashboard queries (the services' own hexr_injector_/bridge_/vault_ aside)
      // and every stat a stats_tags regex names passes istio-proxy's inclusion prefixes.
      const dashboard = readFileSync(path.join(chartDir, "dashboards", "hexr.json"), "utf8");
      const metrics = [...new Set([...dashboard.matchAll(/\b(hexr_[a-z0-9_]+)\{/g)].map((m) => m[1].replace(/_(bucket|sum|count)$/, "")))]
        .filter((name) => !/^hexr_(injector|bridge|vault)_/.test(name));
      expect(metrics.length).toBeGreaterThan(5);
      for (const name of metrics) expect(prefixes.some((prefix) => `wasmcustom.${name}`.startsWith(prefix)), `wasmcustom.${name} not included`).toBe(true);
      for (const tag of expected) {
        const stat = /^\^(wasmcustom\\\.[a-z_]+)/.exec(tag.regex)![1].replace("\\.", ".");
        expect(prefixes.some((prefix) => stat.startsWith(prefix) || prefix.startsWith(stat)), `${stat} not included`).toBe(true);
      }
    }
    // Plain Envoy has the tags in its own bootstrap: no override there.
    expect((await render(undefined)).manifests.filter((m) => m.metadata.name.endsWith("istio-bootstrap"))).toEqual([]);
  });
});

describe("spiffe-helper's health listener and the svid containers' probes", () => {
  it.each(cases)("each svid container probes the port and paths its helper.conf enables, and no NetworkPolicy opens that port (%s)", async (_label, valuesFile) => {
    const { manifests } = await render(valuesFile);
    const workloads = manifests.filter((m) => ["Deployment", "StatefulSet"].includes(m.kind) && (m.spec.template.spec.containers ?? []).some((c: any) => c.name === "svid"));
    expect(workloads.map((w) => w.metadata.name).sort()).toEqual([`${RELEASE}-bridge`, `${RELEASE}-injector`, `${RELEASE}-vault`].filter((name) => manifests.some((m) => m.metadata.name === name && m.kind !== "Service")).sort());
    const policies = manifests.filter((m) => m.kind === "NetworkPolicy");
    for (const workload of workloads) {
      const pod = workload.spec.template.spec;
      const svid = pod.containers.find((c: any) => c.name === "svid");
      const volume = pod.volumes.find((v: any) => v.name === "spiffe-helper-config");
      const configMap = manifests.find((m) => m.kind === "ConfigMap" && m.metadata.name === volume.configMap.name)!;
      const conf: string = configMap.data["helper.conf"];
      const block = /health_checks\s*\{([^}]*)\}/.exec(conf);
      expect(block, `${workload.metadata.name}: no health_checks in helper.conf`).not.toBeNull();
      const setting = (key: string) => new RegExp(`^\\s*${key}\\s*=\\s*"?([^"\\n]+)"?\\s*$`, "m").exec(block![1])?.[1];
      expect(setting("listener_enabled")).toBe("true");
      const port = Number(setting("bind_port"));
      expect(svid.ports).toEqual([{ name: "svid-health", containerPort: port }]);
      expect(svid.livenessProbe.httpGet).toEqual({ path: setting("liveness_path"), port: "svid-health" });
      expect(svid.readinessProbe.httpGet).toEqual({ path: setting("readiness_path"), port: "svid-health" });
      // The init container shares the file: spiffe-helper starts the listener in daemon mode only.
      expect(pod.initContainers.find((c: any) => c.name === "svid-init").args).toContain("-daemon-mode=false");
      const labels = workload.spec.template.metadata.labels;
      for (const policy of policies.filter((p) => Object.entries(p.spec.podSelector?.matchLabels ?? {}).every(([k, val]) => labels[k] === val))) {
        for (const rule of policy.spec.ingress ?? []) {
          expect(rule.ports, `${policy.metadata.name}: an ingress rule without ports opens ${port}`).toBeDefined();
          expect(rule.ports.map((p: any) => p.port), policy.metadata.name).not.toContain(port);
          expect(rule.ports.map((p: any) => p.port), policy.metadata.name).not.toContain("svid-health");
        }
      }
    }
  });
});
