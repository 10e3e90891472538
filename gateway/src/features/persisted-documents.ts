/**
 * Automatic persisted queries and trusted documents.
 * - APQ (Apollo Server's own): in memory (Apollo's InMemoryLRUCache) without Redis; with
 *   REDIS_URL, a tiny KeyValueCache over the shared ioredis connection so every replica knows
 *   every registered hash (a Redis failure is a cache miss: the client resends the query).
 * - TRUSTED_DOCUMENTS=allow|only loads the manifest TRUSTED_DOCUMENTS_PATH ({ "<sha256>": "<query>" },
 *   GraphQL Code Generator's client-preset persistedDocuments output). A request may send only
 *   extensions.persistedQuery.sha256Hash; a hash in the manifest gets its query from there.
 *   With `only`, nothing else runs: an unknown hash gets PERSISTED_QUERY_NOT_FOUND and a query
 *   text that is not in the manifest gets FORBIDDEN (403) — after parsing and validation (bounded
 *   by the operation limits), before any execution, and never registered as an APQ. With `allow`, anything else
 *   goes through as usual (APQ included). The manifest is read at start (restart to change it).
 *   WebSocket subscribes go through the same pipeline (../pipeline.ts), so this holds for them too;
 *   the gateway's own per-event queries never reach it (they go to the executor directly).
 * - APQ entries read from Redis are verified (the value must hash to its key).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { GraphQLError } from 'graphql';
import { orFallback } from '@crm/runtime';
import { redisPrefix } from '../redis';
import type { FeatureOptions, GatewayFeature } from './feature';

/** Apollo's KeyValueCache contract (@apollo/utils.keyvaluecache) over the gateway's Redis: a failure is a miss. */
export class RedisKeyValueCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  /**
   * Entries are verified on read: an APQ key ends with the sha256 of its query, and a value that
   * does not hash to it (written to Redis by anyone but this gateway) is a miss, and deleted.
   */
  async get(key: string): Promise<string | undefined> {
    const value = (await orFallback(this.redis, (r) => r.get(this.prefix + key), null)) ?? undefined;
    const hash = /([0-9a-f]{64})$/i.exec(key)?.[1]?.toLowerCase();
    if (value === undefined || !hash) return value;
    if (createHash('sha256').update(value).digest('hex') === hash) return value;
    await this.delete(key);
    return undefined;
  }
  async set(key: string, value: string, options?: { ttl?: number | null }): Promise<void> {
    const ttl = options?.ttl;
    await orFallback(this.redis, (r) => (ttl ? r.set(this.prefix + key, value, 'EX', ttl) : r.set(this.prefix + key, value)), undefined);
  }
  async delete(key: string): Promise<void> {
    await orFallback(this.redis, (r) => r.del(this.prefix + key), undefined);
  }
}

export function loadManifest(path: string): Map<string, string> {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: expected { "<sha256>": "<query>" }`);
  const manifest = new Map<string, string>();
  for (const [hash, query] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof query !== 'string') throw new Error(`${path}: the value of ${hash} is not a query string`);
    const actual = createHash('sha256').update(query).digest('hex');
    if (actual !== hash.toLowerCase()) throw new Error(`${path}: ${hash} is not the sha256 of its query (${actual})`);
    manifest.set(actual, query);
  }
  return manifest;
}

export function usePersistedDocuments({ config, logger, redis }: FeatureOptions): GatewayFeature {
  const mode = config.TRUSTED_DOCUMENTS;
  let manifest = new Map<string, string>();
  if (mode !== 'off') {
    const path = resolve(config.TRUSTED_DOCUMENTS_PATH);
    if (existsSync(path)) manifest = loadManifest(path);
    else if (mode === 'only') throw new Error(`TRUSTED_DOCUMENTS=only but the manifest ${path} does not exist`);
    else logger.warn({ path }, 'TRUSTED_DOCUMENTS=allow: no manifest; only APQ and plain queries');
    logger.info({ mode, documents: manifest.size }, 'trusted documents');
  }

  return {
    name: 'persisted-documents',
    apolloOptions: redis ? { persistedQueries: { cache: new RedisKeyValueCache(redis, `${redisPrefix(config)}apq:`), ttl: 86_400 } } : {},
    apolloPlugins:
      mode === 'off'
        ? []
        : [
            {
              async requestDidStart({ request }) {
                const pq = request.extensions?.persistedQuery as { sha256Hash?: unknown } | undefined;
                const hash = typeof pq?.sha256Hash === 'string' ? pq.sha256Hash.toLowerCase() : undefined;
                // A manifest hash without its query: the query comes from the manifest. Unknown
                // hashes fall through to APQ, which answers PERSISTED_QUERY_NOT_FOUND.
                if (request.query === undefined && hash && manifest.has(hash)) request.query = manifest.get(hash);
                if (mode !== 'only') return;
                return {
                  // Errors thrown from requestDidStart become 500s in Apollo Server; here they are
                  // answered as they are. queryHash is the sha256 of the query (APQ or not).
                  async didResolveOperation({ queryHash }) {
                    if (!manifest.has(queryHash)) {
                      throw new GraphQLError('Only trusted documents are accepted (TRUSTED_DOCUMENTS=only): this operation is not in the manifest', {
                        extensions: { code: 'FORBIDDEN', http: { status: 403 } },
                      });
                    }
                  },
                };
              },
            },
          ],
  };
}
