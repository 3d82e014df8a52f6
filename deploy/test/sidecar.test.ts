// The chart's plain-Envoy sidecar: the bootstrap its ConfigMap carries, rendered with each values
// file that enables it, passes `envoy --mode validate` with the real Envoy binary and the real
// filters (validation runs the filters' proxy_on_configure on the plugin configuration the values
// made). Files the config names in the pod (the .wasm, sockets) are pointed at this machine's:
// build/*.wasm and temp paths. And the chart's template is the one generated from envoy/sidecar.yaml
// (`scripts/generate-chart-sidecar.ts --check`).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateEnvoyConfig } from "../../stack/envoy.ts";
import { projectRoot } from "../../support/tools.ts";
import { configMapEntries, render, requireChart, run, valuesFiles } from "./helpers.ts";

let dir: string;
beforeAll(() => {
  requireChart();
  dir = mkdtempSync(path.join(tmpdir(), "hexr-chart-envoy-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const wasm = {
  exchange: path.join(projectRoot, "build", "exchange_filter.wasm"),
  llm: path.join(projectRoot, "build", "llm_filter.wasm"),
};

/**
 * Maps the pod's paths onto this machine's: every `filename` that does not exist here (the
 * .wasm files; a CA bundle such as /etc/ssl/certs/ca-certificates.crt is used as it is), every
 * Unix socket path and the access logs' files. Returns the mapping, for the assertions.
 */
function localize(config: any, where: string): Map<string, string> {
  const mapped = new Map<string, string>();
  const sockets = path.join(where, "s");
  mkdirSync(sockets, { recursive: true, mode: 0o700 });
  const visit = (node: any, parentKey: string) => {
    if (Array.isArray(node)) return node.forEach((child) => visit(child, parentKey));
    if (!node || typeof node !== "object") return;
    // A file access log (/dev/stdout in the pod; not openable under a test runner's pipes).
    if (typeof node["@type"] === "string" && node["@type"].endsWith(".FileAccessLog") && typeof node.path === "string") {
      const local = path.join(where, `access-${mapped.size}.log`);
      mapped.set(node.path, local);
      node.path = local;
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === "filename" && typeof value === "string" && !existsSync(value)) {
        let local: string;
        if (value.endsWith(".wasm")) local = /llm/.test(value) ? wasm.llm : wasm.exchange;
        else throw new Error(`the sidecar config names ${value} (${parentKey}), which this test does not know how to stand in for`);
        mapped.set(value, local);
        node[key] = local;
      } else if (key === "path" && parentKey === "pipe" && typeof value === "string") {
        const local = path.join(sockets, `${mapped.size}.sock`);
        mapped.set(value, local);
        node[key] = local;
      } else {
        visit(value, key);
      }
    }
  };
  visit(config, "");
  return mapped;
}

const files = valuesFiles();

describe("the chart's plain-Envoy sidecar bootstrap", () => {
  it("is rendered by at least one values file", async () => {
    const found: string[] = [];
    for (const file of files) {
      const rendering = await render(file);
      if (configMapEntries(rendering.manifests).some(([, , value]) => /static_resources:/.test(value))) found.push(path.basename(file));
    }
    expect(found, "no values file renders a ConfigMap with an Envoy bootstrap").not.toEqual([]);
  });

  it.each(files.map((file) => [path.basename(file), file]))(
    "passes `envoy --mode validate` with the real filters (%s)",
    async (name, file) => {
      const rendering = await render(file);
      const bootstraps = configMapEntries(rendering.manifests).filter(([, , value]) => /static_resources:/.test(value));
      for (const [manifest, key, value] of bootstraps) {
        const config = parse(value);
        expect(config.static_resources, `${manifest.metadata.name}/${key}`).toBeDefined();
        const where = path.join(dir, `${name}-${manifest.metadata.name}-${key}`.replace(/[^a-z0-9.-]+/gi, "_"));
        mkdirSync(where, { recursive: true });
        const mapped = localize(config, where);
        expect([...mapped.keys()].filter((from) => from.endsWith(".wasm")).length, "no .wasm in the bootstrap").toBeGreaterThan(0);
        const configPath = path.join(where, "envoy.yaml");
        writeFileSync(configPath, stringify(config));
        await expect(validateEnvoyConfig(configPath)).resolves.toMatch(/OK/);
        // The filter is loaded from the .wasm, configured from the values (not an empty configuration).
        const text = JSON.stringify(config);
        expect(text).toContain(wasm.exchange);
        expect(text).toContain('"name":"envoy.filters.http.wasm"');
      }
    },
    120_000,
  );

  it("is validation that can fail: a bad filter configuration in the values is refused by the filter", async () => {
    const file = files.find((candidate) => /plain-envoy/.test(candidate)) ?? files[0];
    const rendering = await render(file);
    const bootstrap = configMapEntries(rendering.manifests).find(([, , value]) => /static_resources:/.test(value));
    if (!bootstrap) return;
    // The filter's configuration is a JSON string inside the bootstrap; break identity_sources.
    const broken = bootstrap[2].replace(/\\"identity_sources\\":\[[^\]]*\]/, '\\"identity_sources\\":[\\"telepathy\\"]');
    expect(broken).not.toBe(bootstrap[2]);
    const config = parse(broken);
    const where = path.join(dir, "broken");
    mkdirSync(where, { recursive: true });
    localize(config, where);
    const configPath = path.join(where, "envoy.yaml");
    writeFileSync(configPath, stringify(config));
    await expect(validateEnvoyConfig(configPath)).rejects.toThrow(/identity_sources/);
  }, 120_000);
});

describe("the Istio WasmPlugins' configuration", () => {
  // Istio hands pluginConfig to the same filter as its configuration. Put into the plain bootstrap in
  // place of the one the chart rendered for it, it must pass the filter's configure step too.
  const istioCases = files.map((file) => [path.basename(file), file]);
  it.each(istioCases)("is accepted by the real filter's configure step (%s)", async (name, file) => {
    const rendering = await render(file);
    const plugins = rendering.manifests.filter((m) => m.kind === "WasmPlugin");
    if (plugins.length === 0) return;
    // Bootstraps to carry the configuration: the same values' first, then the other values files'.
    const candidates: string[] = [];
    for (const other of [file, ...files.filter((f) => f !== file)]) {
      for (const [, , value] of configMapEntries((await render(other)).manifests)) if (/static_resources:/.test(value)) candidates.push(value);
    }
    expect(candidates.length, "no plain-Envoy bootstrap rendered by any values file").toBeGreaterThan(0);
    for (const plugin of plugins) {
      expect(plugin.spec.pluginConfig, `${plugin.metadata.name} has no pluginConfig`).toBeDefined();
      const isLlm = /llm/i.test(`${plugin.metadata.name} ${plugin.spec.pluginName ?? ""} ${plugin.spec.url}`);
      let config: any;
      let replaced = 0;
      const visit = (node: any) => {
        if (Array.isArray(node)) return node.forEach(visit);
        if (!node || typeof node !== "object") return;
        const filename: unknown = node.vm_config?.code?.local?.filename;
        if (typeof filename === "string" && filename.endsWith(".wasm") && /llm/.test(filename) === isLlm && node.configuration) {
          node.configuration = { "@type": "type.googleapis.com/google.protobuf.StringValue", value: JSON.stringify(plugin.spec.pluginConfig) };
          replaced++;
        }
        for (const value of Object.values(node)) visit(value);
      };
      for (const candidate of candidates) {
        config = parse(candidate);
        visit(config);
        if (replaced > 0) break;
      }
      expect(replaced, `no ${isLlm ? "LLM" : "exchange"} filter in any bootstrap to configure with ${plugin.metadata.name}`).toBeGreaterThan(0);
      const where = path.join(dir, `istio-${name}-${plugin.metadata.name}`.replace(/[^a-z0-9.-]+/gi, "_"));
      mkdirSync(where, { recursive: true });
      localize(config, where);
      const configPath = path.join(where, "envoy.yaml");
      writeFileSync(configPath, stringify(config));
      await expect(validateEnvoyConfig(configPath), `${name}: WasmPlugin ${plugin.metadata.name}`).resolves.toMatch(/OK/);
    }
  }, 120_000);
});

describe("the chart's copy of envoy/sidecar.yaml", () => {
  it("is the generated one: `npx tsx scripts/generate-chart-sidecar.ts --check` exits 0", async () => {
    requireChart();
    const tsx = path.join(projectRoot, "node_modules", ".bin", "tsx");
    const result = await run(tsx, [path.join(projectRoot, "scripts", "generate-chart-sidecar.ts"), "--check"], { timeout: 120_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
  }, 120_000);
});
