/**
 * A small cache port with two adapters: Redis (ioredis) when REDIS_URL is set, an in-memory TTL
 * map otherwise. Keys are namespaced by KAFKA_NAMESPACE + DATABASE_PREFIX + the caller's
 * namespace, so parallel stacks sharing one Redis never collide. A cache is an optimisation:
 * every Redis failure is logged and answered as a miss (get) or ignored (set/delete), so callers
 * compute without it when Redis is down.
 */
import { Redis } from 'ioredis';
import type { PlatformConfig } from './config';
import type { Logger } from './logger';

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
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  private lastWarn = 0;

  constructor(url: string, private readonly prefix: string, options: CacheOptions = {}) {
    this.logger = options.logger;
    this.timeoutMs = options.timeoutMs ?? 250;
    this.redis = new Redis(url, {
      // Fail fast while disconnected instead of queueing: the caller computes without the cache.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 5000),
    });
    this.redis.on('error', (err: Error) => this.warn('redis cache error', err));
  }

  async get<T>(key: string): Promise<T | undefined> {
    const raw = await this.guard(() => this.redis.get(this.prefix + key));
    if (raw === undefined || raw === null) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      return undefined;
    }
  }

  async set(key: string, value: unknown, ttlSeconds: number): Promise<void> {
    await this.guard(() => this.redis.set(this.prefix + key, JSON.stringify(value), 'EX', Math.max(1, Math.ceil(ttlSeconds))));
  }

  async del(key: string): Promise<void> {
    await this.guard(() => this.redis.del(this.prefix + key));
  }

  async delByPrefix(prefix: string): Promise<void> {
    const pattern = `${escapeGlob(this.prefix + prefix)}*`;
    await this.guard(async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await this.redis.del(...keys);
      } while (cursor !== '0');
      return null;
    }, this.timeoutMs * 8);
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private async guard<R>(op: () => Promise<R>, timeoutMs = this.timeoutMs): Promise<R | undefined> {
    if (this.redis.status !== 'ready') return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`redis cache timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      this.warn('redis cache unavailable; computing without it', err);
      return undefined;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private warn(message: string, err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return; // one line per 10 s while Redis is down
    this.lastWarn = now;
    this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, message);
  }
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
