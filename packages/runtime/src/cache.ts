/**
 * A small cache port with two adapters: Redis (ioredis) when REDIS_URL is set, an in-memory TTL
 * map otherwise. Keys are namespaced by KAFKA_NAMESPACE + DATABASE_PREFIX + the caller's
 * namespace, so parallel stacks sharing one Redis never collide. A cache is an optimisation: on
 * the kit's one Redis policy (./redis.ts), a Redis failure is a miss (get) or ignored
 * (set/delete), so callers compute without it when Redis is down.
 */
import type { Redis } from 'ioredis';
import type { PlatformConfig } from '@crm/config';
import type { Logger } from '@crm/telemetry';
import { closeRedis, createRedis, orFallback } from './redis';

export interface Cache {
  readonly kind: 'redis' | 'memory';
  /** The value stored under `key`, or undefined on a miss (or when the cache is unreachable). */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Stores a JSON-serialisable value for `ttlSeconds`. */
  set(key: string, value: unknown, ttlSeconds: number): Promise<void>;
  del(key: string): Promise<void>;
  /** Deletes every key that starts with `prefix` (within this cache's namespace). */
  delByPrefix(prefix: string): Promise<void>;
  close(): Promise<void>;
}

export interface CacheOptions {
  logger?: Logger;
  /** Upper bound for one Redis round trip before it counts as a miss (default 250 ms). */
  timeoutMs?: number;
}

export function cacheNamespace(config: PlatformConfig, namespace: string): string {
  return `crm:${config.KAFKA_NAMESPACE}${config.DATABASE_PREFIX}${namespace}:`;
}

export function createCache(config: PlatformConfig, namespace: string, options: CacheOptions = {}): Cache {
  const prefix = cacheNamespace(config, namespace);
  return config.REDIS_URL ? new RedisCache(config.REDIS_URL, prefix, options) : new MemoryCache(prefix);
}

export class MemoryCache implements Cache {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, { value: string; expires: number }>();

  constructor(private readonly prefix = '') {}

  async get<T>(key: string): Promise<T | undefined> {
    const k = this.prefix + key;
    const entry = this.entries.get(k);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.entries.delete(k);
      return undefined;
    }
    return JSON.parse(entry.value) as T;
  }

  async set(key: string, value: unknown, ttlSeconds: number): Promise<void> {
    this.sweep();
    // Stored serialised, like Redis: a caller mutating its object later cannot change the cache.
    this.entries.set(this.prefix + key, { value: JSON.stringify(value), expires: Date.now() + ttlSeconds * 1000 });
  }

  async del(key: string): Promise<void> {
    this.entries.delete(this.prefix + key);
  }

  async delByPrefix(prefix: string): Promise<void> {
    const full = this.prefix + prefix;
    for (const k of [...this.entries.keys()]) if (k.startsWith(full)) this.entries.delete(k);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }

  private sweep(): void {
    if (this.entries.size < 1000) return;
    const now = Date.now();
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
  }
}

export class RedisCache implements Cache {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
    options: CacheOptions = {},
  ) {
    // The kit's one Redis policy (./redis.ts); a cache answers a miss within timeoutMs.
    this.redis = createRedis(url, { name: `cache ${prefix}`, commandTimeoutMs: options.timeoutMs ?? 250, ...(options.logger ? { logger: options.logger } : {}) });
  }

  async get<T>(key: string): Promise<T | undefined> {
    const raw = await orFallback(this.redis, (r) => r.get(this.prefix + key), null);
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      return undefined;
    }
  }

  async set(key: string, value: unknown, ttlSeconds: number): Promise<void> {
    await orFallback(this.redis, (r) => r.set(this.prefix + key, JSON.stringify(value), 'EX', Math.max(1, Math.ceil(ttlSeconds))), undefined);
  }

  async del(key: string): Promise<void> {
    await orFallback(this.redis, (r) => r.del(this.prefix + key), undefined);
  }

  async delByPrefix(prefix: string): Promise<void> {
    const pattern = `${escapeGlob(this.prefix + prefix)}*`;
    await orFallback(
      this.redis,
      async (r) => {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
          cursor = next;
          if (keys.length > 0) await r.del(...keys);
        } while (cursor !== '0');
      },
      undefined,
    );
  }

  close(): Promise<void> {
    return closeRedis(this.redis);
  }
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
