import { join } from 'node:path';
import type { SubgraphDefinition } from '@crm/runtime';
import { entities } from './entities';
import { migrations } from '../migrations';
import { createLoaders, resolvers, type SalesActivityLoaders } from './resolvers';
import { handlers } from './events/handlers';
import { dueSoonJob, runDueSoon } from './due-soon';

export const salesActivitySubgraph: SubgraphDefinition<SalesActivityLoaders> = {
  name: 'sales-activity',
  schemaPath: join(__dirname, 'schema.graphql'),
  resolvers,
  entities,
  migrations,
  createLoaders,
  consumes: handlers,
  jobs: [dueSoonJob],
};

export { runDueSoon, dueSoonJob };
export default salesActivitySubgraph;
