# One image for every service: SERVICE=gateway or SERVICE=<subgraph name> (docker-compose.yml).
# Two stages: dependencies are installed (production only) in the first; the runtime stage gets
# them and the sources, owned by root and read-only to the unprivileged `node` user it runs as.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/config/package.json packages/config/
COPY packages/errors/package.json packages/errors/
COPY packages/telemetry/package.json packages/telemetry/
COPY packages/database/package.json packages/database/
COPY packages/events/package.json packages/events/
COPY packages/runtime/package.json packages/runtime/
COPY packages/testing/package.json packages/testing/
COPY packages/customer-directory/package.json packages/customer-directory/
COPY apps/platform/package.json apps/platform/
COPY gateway/package.json gateway/
COPY subgraphs/auth/package.json subgraphs/auth/
COPY subgraphs/customer/package.json subgraphs/customer/
COPY subgraphs/sales-activity/package.json subgraphs/sales-activity/
COPY subgraphs/opportunity/package.json subgraphs/opportunity/
COPY subgraphs/analytics/package.json subgraphs/analytics/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# The whole install (root and any workspace node_modules, workspace links), then the sources,
# each named (.dockerignore is an allowlist too: no .env, .npmrc, keys or .data can come along).
COPY --from=deps /app ./
COPY package.json package-lock.json tsconfig.json supergraph.yaml ./
COPY packages/ packages/
COPY apps/platform/ apps/platform/
COPY gateway/ gateway/
COPY subgraphs/ subgraphs/
COPY clients/persisted-operations.json clients/
USER node
EXPOSE 4000 4001 4002 4003 4004 4005
# The gateway composes supergraph.yaml (with the <NAME>_URL routing of the environment) into /tmp
# and serves it; a subgraph runs its own entry, subgraphs/$SERVICE/src/main.ts, which loads only that
# subgraph. Nothing is written under /app.
CMD ["sh", "-c", "if [ \"$SERVICE\" = gateway ]; then node_modules/.bin/tsx gateway/src/compose-cli.ts supergraph.yaml /tmp/supergraph.graphql && SUPERGRAPH_PATH=/tmp/supergraph.graphql exec node_modules/.bin/tsx gateway/src/main.ts; elif [ -n \"$SERVICE\" ]; then exec node_modules/.bin/tsx \"subgraphs/$SERVICE/src/main.ts\"; else echo 'set SERVICE=gateway or SERVICE=<subgraph>' >&2; exit 64; fi"]
