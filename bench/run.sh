#!/usr/bin/env bash
# `npm run bench`: everything the benchmark needs, then the benchmark (bench/main.ts).
# Extra arguments go to bench/main.ts (e.g. --quick).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "[bench] $*" >&2; }

bash scripts/bootstrap.sh
source scripts/node-env.sh

# The load generator and the tools that pin processes to cores (Debian packages).
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
command -v perf >/dev/null || say "perf not found: the CPU profile part is skipped (apt-get install linux-perf)"

npm run --silent build
# The wasm floor (bench/wasm-floor/): the smallest proxy-wasm filter that answers like an L1 hit.
say "asc bench/wasm-floor/floor.ts -> build/wasm_floor.wasm"
node_modules/.bin/asc bench/wasm-floor/floor.ts --config bench/wasm-floor/asconfig.json --target release
exec node --import tsx bench/main.ts "$@"
