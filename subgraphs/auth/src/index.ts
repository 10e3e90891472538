import { join } from 'node:path';
import type { SubgraphDefinition } from '@crm/kit';
import { entities } from './entities';
import { migrations } from '../migrations';
import { createLoaders, resolvers, type AuthLoaders } from './resolvers';
import { ensureAdmin } from './bootstrap';
import { auditHandlers } from './events/handlers';
import { mailJob } from './mail';
import { tokenStates } from './token-states';

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
  internal: { 'token-states': tokenStates },
};

export default authSubgraph;
