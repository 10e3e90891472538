import { join } from 'node:path';
import type { SubgraphDefinition } from '@crm/runtime';
import { entities } from './entities';
import { migrations } from '../migrations';
import { createLoaders, resolvers, type AnalyticsLoaders } from './resolvers';
import { handlers } from './events/handlers';
import { cacheFor, closeCache } from './reports';
import { sagaTimeoutJob } from './sagas';

export const analyticsSubgraph: SubgraphDefinition<AnalyticsLoaders> = {
  name: 'analytics',
  schemaPath: join(__dirname, 'schema.graphql'),
  resolvers: resolvers,
  entities,
  migrations,
  createLoaders,
  consumes: handlers,
  jobs: [sagaTimeoutJob],
  async onStart(runtime) {
    // The report cache lives as long as this subgraph instance: Redis when REDIS_URL is set.
    const cache = cacheFor(runtime.config, runtime.logger);
    runtime.logger.info({ cache: cache.kind }, 'report cache');
    const stop = runtime.stop.bind(runtime);
    runtime.stop = async () => {
      await stop();
      await closeCache(runtime.config);
    };
  },
};

export default analyticsSubgraph;
