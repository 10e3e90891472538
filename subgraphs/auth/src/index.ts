import { join } from 'node:path';
import type { SubgraphDefinition } from '@crm/kit';
import { entities } from './entities';
import { migrations } from '../migrations';
import { createLoaders, resolvers, type AuthLoaders } from './resolvers';
import { ensureAdmin } from './bootstrap';
import { auditHandlers } from './events/handlers';
import { mailJob } from './mail';

export const authSubgraph: SubgraphDefinition<AuthLoaders> = {
  name: 'auth',
  schemaPath: join(__dirname, 'schema.graphql'),
  resolvers,
  entities,
  migrations,
  createLoaders,
  consumes: auditHandlers,
  onStart: ensureAdmin,
  jobs: [mailJob],
};

export default authSubgraph;
