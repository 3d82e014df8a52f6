// Shared by the chart's offline checks (deploy/test/*.test.ts): where the chart and its values files
// are, `helm template` with a values file into parsed manifests, and the tools' runner.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments, parse } from "yaml";
import { projectRoot, tools } from "../../support/tools.ts";

const execFileP = promisify(execFile);

export const chartDir = path.join(projectRoot, "deploy", "helm", "hexr");
export const valuesDir = path.join(projectRoot, "deploy", "helm", "values");
export const dockerDir = path.join(projectRoot, "deploy", "docker");
export const RELEASE = "hexr";
export const NAMESPACE = "hexr-system";

/**
 * The Kubernetes versions every rendered manifest is validated against (kubernetes-validate ships
 * their schemas): the oldest minor the chart supports and a current one.
 */
export const KUBERNETES_VERSIONS = ["1.31.0", "1.35.0"];

/**
 * The API groups of the CRDs the chart may render, offered to `helm template` as a cluster with
 * Istio and the Prometheus operator would (`--api-versions`), so templates gated on
 * `.Capabilities.APIVersions.Has` render too.
 */
export const CRD_API_VERSIONS = [
  "extensions.istio.io/v1alpha1",
  "security.istio.io/v1",
  "security.istio.io/v1beta1",
  "networking.istio.io/v1",
  "monitoring.coreos.com/v1",
  "spire.spiffe.io/v1alpha1",
];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool; never throws for a non-zero exit (the result carries it). */
export async function run(file: string, args: string[], options: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileP(file, args, {
      cwd: options.cwd ?? projectRoot,
      timeout: options.timeout ?? 60_000,
      maxBuffer: 256 * 1024 * 1024,
      env: options.env ?? process.env,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; message?: string };
    if (typeof e.code !== "number") throw new Error(`${path.basename(file)} ${args.join(" ")} did not run: ${e.message}\n${e.stderr ?? ""}`);
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

export function requireChart(): void {
  if (!existsSync(path.join(chartDir, "Chart.yaml"))) throw new Error(`no chart at ${path.relative(projectRoot, chartDir)} (Chart.yaml missing)`);
}

/** `deploy/helm/values/*.yaml`, by name. */
export function valuesFiles(): string[] {
  if (!existsSync(valuesDir)) return [];
  return readdirSync(valuesDir)
    .filter((name) => name.endsWith(".yaml") || name.endsWith(".yml"))
    .sort()
    .map((name) => path.join(valuesDir, name));
}

export function readYaml(file: string): any {
  return parse(readFileSync(file, "utf8")) ?? {};
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

export interface Rendering {
  /** The values file (undefined: the chart's defaults alone). */
  valuesFile?: string;
  label: string;
  yaml: string;
  manifests: Manifest[];
}

export function helmTemplateArgs(valuesFile: string | undefined, extra: string[] = []): string[] {
  const args = ["template", RELEASE, chartDir, "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSIONS[0]];
  for (const apiVersion of CRD_API_VERSIONS) args.push("--api-versions", apiVersion);
  if (valuesFile) args.push("--values", valuesFile);
  return [...args, ...extra];
}

export async function helmTemplate(valuesFile: string | undefined, extra: string[] = []): Promise<RunResult> {
  return run(tools.helm(), helmTemplateArgs(valuesFile, extra));
}

const renderings = new Map<string, Promise<Rendering>>();

/** `helm template` with a values file, parsed; throws with Helm's message when it does not render. */
export function render(valuesFile: string | undefined): Promise<Rendering> {
  const key = valuesFile ?? "";
  let rendering = renderings.get(key);
  if (!rendering) {
    rendering = (async () => {
      const label = valuesFile ? path.relative(projectRoot, valuesFile) : "chart defaults";
      const result = await helmTemplate(valuesFile);
      if (result.code !== 0) throw new Error(`helm template (${label}) failed:\n${result.stderr}`);
      const manifests: Manifest[] = [];
      for (const document of parseAllDocuments(result.stdout)) {
        if (document.errors.length > 0) throw new Error(`helm template (${label}) printed invalid YAML: ${document.errors[0].message}`);
        const value = document.toJSON();
        if (value !== null && value !== undefined) manifests.push(value as Manifest);
      }
      return { valuesFile, label, yaml: result.stdout, manifests };
    })();
    renderings.set(key, rendering);
  }
  return rendering;
}

/** Every ConfigMap's data entries, as [manifest, key, value]. */
export function configMapEntries(manifests: Manifest[]): Array<[Manifest, string, string]> {
  const entries: Array<[Manifest, string, string]> = [];
  for (const manifest of manifests) {
    if (manifest.kind !== "ConfigMap") continue;
    for (const [key, value] of Object.entries((manifest.data ?? {}) as Record<string, string>)) entries.push([manifest, key, value]);
  }
  return entries;
}

export function get(object: any, dotted: string): any {
  return dotted.split(".").reduce((value, key) => (value === undefined || value === null ? undefined : value[key]), object);
}
