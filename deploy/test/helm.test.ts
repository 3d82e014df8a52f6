// The Helm chart, offline: `helm lint --strict` with each values file, `helm template` with each
// one, every rendered manifest validated against the Kubernetes API's own schemas
// (kubernetes-validate, --strict) and the CRDs' spec fields against schemas of our own
// (crd-schemas.json), the seeds' values where the injector reads them, and values.schema.json
// refusing bad values.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tools } from "../../support/tools.ts";
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
  valuesFiles,
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
  // Every scrape endpoint has the common fields too ($defs.scrapeEndpointCommon).
  const defs = structuredClone(crdSchemas.$defs);
  const merged = structuredClone(schema);
  for (const list of ["endpoints", "podMetricsEndpoints"]) {
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
