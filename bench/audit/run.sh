#!/bin/sh
# Runs the public federation gateway audit (graphql-hive/federation-gateway-audit: 46 suites, 199
# cases) against this repository's gateway. Nothing of the audit is vendored here: give it a
# checkout of the audit's repository, installed OUTSIDE this project (see README.md next to this file).
#
#   AUDIT_DIR=/work/audit sh bench/audit/run.sh [results file name, default results.txt]
#
# Ports: the audit's server on AUDIT_PORT (4720), the gateway on GATEWAY_PORT (4730): dedicated
# ports, because before each suite the audit kills whatever listens on the gateway's port.
set -e
here=$(cd "$(dirname "$0")" && pwd)
repo=${CRM_REPO:-$(cd "$here/../.." && pwd)}
: "${AUDIT_DIR:?set AUDIT_DIR to a checkout of graphql-hive/federation-gateway-audit with npm install done}"
AUDIT_PORT=${AUDIT_PORT:-4720}
GATEWAY_PORT=${GATEWAY_PORT:-4730}
mkdir -p "$AUDIT_DIR/gateways/crm"
cat > "$AUDIT_DIR/gateways/crm/gateway.json" <<JSON
{ "name": "CRM gateway", "repository": "local", "website": "local",
  "graphql": "http://127.0.0.1:$GATEWAY_PORT/graphql", "health": "http://127.0.0.1:$GATEWAY_PORT/health" }
JSON
# Per suite: fetch its supergraph from the audit server, start this gateway on it (the benchmark's
# adapter: NODE_ENV=production, auth off, one worker).
cat > "$AUDIT_DIR/gateways/crm/run.sh" <<SH
npm start supergraph -- --cwd ./gateways/crm --test \$1 --port $AUDIT_PORT
cd "\$(dirname "\$0")"
exec env REPO_ROOT=$repo SUPERGRAPH_FILE=\$PWD/supergraph.graphql PORT=$GATEWAY_PORT HOST=127.0.0.1 WORKERS=1 node $repo/bench/gateways/runners/crm.mjs
SH
echo 'echo OK' > "$AUDIT_DIR/gateways/crm/install.sh"
cd "$AUDIT_DIR"
# Node 20 has no Promise.withResolvers (the audit's CLI uses it): preload a polyfill.
export NODE_OPTIONS="--require $here/with-resolvers.cjs"
# The gateway starts through tsx on a busy machine: more than the audit's default 5 s to come up.
export GATEWAY_TIMEOUT=${GATEWAY_TIMEOUT:-60000}
exec npm start -- test --cwd ./gateways/crm --run-script ./run.sh --reporter dot \
  --graphql "http://127.0.0.1:$GATEWAY_PORT/graphql" --healthcheck "http://127.0.0.1:$GATEWAY_PORT/health" \
  --port "$AUDIT_PORT" --write "${1:-results.txt}"
