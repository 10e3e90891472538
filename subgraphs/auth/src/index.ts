import { join } from 'node:path';
import { authSigningKey, parsePublicKeys, sendJson, type SubgraphDefinition } from '@crm/runtime';
import { entities } from './entities';
import { migrations } from '../migrations';
import { createLoaders, resolvers, type AuthLoaders } from './resolvers';
import { ensureAdmin } from './bootstrap';
import { AUDIT_LINGER_MS, auditHandlers } from './events/handlers';
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
  consumeLingerMs: AUDIT_LINGER_MS,
  onStart: ensureAdmin,
  jobs: [mailJob],
  internal: { 'token-states': tokenStates },
  // Auth's public keys (JWKS): the current signing key's, plus AUTH_PUBLIC_KEYS when auth is given them (a key roll).
  routes: (config) => ({
    '/.well-known/jwks.json': (_req, res) => {
      const current = authSigningKey(config).publicJwk;
      const listed = config.AUTH_PUBLIC_KEYS ? parsePublicKeys(config.AUTH_PUBLIC_KEYS, 'AUTH_PUBLIC_KEYS').jwks.keys : [];
      sendJson(res, 200, { keys: [current, ...listed.filter((k) => (k as { kid?: string }).kid !== (current as { kid?: string }).kid)] });
    },
  }),
};

export default authSubgraph;
