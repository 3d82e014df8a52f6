// Where the real binaries live. scripts/bootstrap.sh installs each one into the project;
// a binary already on PATH (a platform engineer's own Envoy or Valkey) is preferred.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function onPath(name: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function local(relative: string): string | undefined {
  const full = path.join(projectRoot, relative);
  return existsSync(full) ? full : undefined;
}

function required(what: string, found: string | undefined): string {
  if (!found) throw new Error(`${what} not found: run \`npm run setup\` (scripts/bootstrap.sh)`);
  return found;
}

export const tools = {
  envoy: () => required("envoy", onPath("envoy") ?? local(".venv/bin/envoy")),
  opa: () => required("opa", local(".tools/bin/opa") ?? onPath("opa")),
  valkeyServer: () => required("valkey-server or redis-server", onPath("valkey-server") ?? onPath("redis-server")),
  motoServer: () => required("moto_server", local(".venv/bin/moto_server")),
  python: () => required("python (.venv)", local(".venv/bin/python")),
  // The chart's offline checks (deploy/test): Helm from deploy/tools/go.mod, the Kubernetes schemas
  // and hadolint from .venv, checkov from a virtualenv of its own (.venv-scan: its pins clash with
  // boto3's in requirements.txt).
  helm: () => required("helm", local(".tools/bin/helm") ?? onPath("helm")),
  kubernetesValidate: () => required("kubernetes-validate (.venv)", local(".venv/bin/kubernetes-validate")),
  hadolint: () => required("hadolint (.venv)", local(".venv/bin/hadolint") ?? onPath("hadolint")),
  checkov: () => required("checkov (.venv-scan)", local(".venv-scan/bin/checkov")),
};
