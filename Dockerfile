# One image for every service: SERVICE=gateway or SERVICE=<subgraph name>.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/kit/package.json packages/kit/
COPY packages/stack/package.json packages/stack/
COPY gateway/package.json gateway/
COPY subgraphs/auth/package.json subgraphs/auth/
COPY subgraphs/customer/package.json subgraphs/customer/
COPY subgraphs/sales-activity/package.json subgraphs/sales-activity/
COPY subgraphs/opportunity/package.json subgraphs/opportunity/
COPY subgraphs/analytics/package.json subgraphs/analytics/
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN chown -R node:node /app
USER node
# The gateway composes nothing at run time: compose-then-serve is the entrypoint's job.
CMD ["sh", "-c", "if [ \"$SERVICE\" = gateway ]; then npx tsx gateway/src/compose-cli.ts supergraph.yaml /tmp/supergraph.graphql && SUPERGRAPH_PATH=/tmp/supergraph.graphql exec npx tsx gateway/src/main.ts; else exec npx tsx packages/stack/src/run-subgraph.ts \"$SERVICE\"; fi"]
