import { join } from 'node:path';
import type { SubgraphDefinition } from '@crm/runtime';
import { entities } from './entities';
import { migrations } from '../migrations';
import { createLoaders, resolvers, type CustomerLoaders } from './resolvers';
import { handlers } from './events/handlers';

export const customerSubgraph: SubgraphDefinition<CustomerLoaders> = {
  name: 'customer',
  schemaPath: join(__dirname, 'schema.graphql'),
  resolvers,
  entities,
  migrations,
  createLoaders,
  consumes: handlers,
};

export default customerSubgraph;
