#!/usr/bin/env bash
# Runs a command on the project's Node.js (see node-env.sh), e.g. `bash scripts/with-node.sh npm run
# test:run`: npm and every node, tsx and vitest it starts are that Node, not the machine's.
set -euo pipefail
source "$(dirname "$0")/node-env.sh"
if [ ! -x "$hexr_node_dir/bin/node" ]; then
  echo "with-node.sh: $hexr_node_dir has no Node.js; run \`npm run setup\` (scripts/bootstrap.sh) first" >&2
  exit 1
fi
exec "$@"
