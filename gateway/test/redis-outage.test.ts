/**
 * One Redis outage policy (kit redis.ts) for every user, proven on a Redis of this test's own
 * (redis-server on a free port: frozen with SIGSTOP, then stopped, then started again):
 * - the rate limiter keeps limiting (its in-memory insurance limiter), APQ and the cache answer
 *   a miss, nothing throws and nothing waits for Redis;
 * - each connection logs the outage once, however many commands failed meanwhile, and once that
 *   it is back; afterwards every user is on Redis again.
 * Skipped where there is no redis-server binary.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { createCache, waitRedisReady, type Cache } from '@crm/runtime';
import { createLogger } from '@crm/telemetry';
import { eventually } from '@crm/testing';
import { freePort } from '@crm/database';
import { readConfig, type PlatformConfig } from '@crm/config';
import { createLimiter, RateLimiterRes } from '../src/limiter';
import { createGatewayRedis } from '../src/redis';
import { RedisKeyValueCache } from '../src/features/persisted-documents';

const binary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find(existsSync);
const maybe = binary ? describe : describe.skip;

maybe('Redis outage', () => {
  let port: number;
  let server: ChildProcess | undefined;
  let config: PlatformConfig;
  let redis: Redis;
  let cache: Cache;
  const lines: { msg: string; redis?: string }[] = [];

  const startRedis = async () => {
    server = spawn(binary!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await eventually(async () => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG');
  };
  const stopRedis = async () => {
    const s = server!;
    const exited = new Promise((r) => s.once('exit', r));
    s.kill('SIGKILL');
    await exited;
    server = undefined;
  };
  const logged = (msg: string, who: string) => lines.filter((l) => l.msg === msg && l.redis === who).length;

  beforeAll(async () => {
    port = await freePort();
    await startRedis();
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { msg: string });
        done();
      },
    });
    const logger = createLogger('gateway', 'debug', sink);
    config = readConfig({}, { LOG_LEVEL: 'silent', REDIS_URL: `redis://127.0.0.1:${port}`, KAFKA_NAMESPACE: `ro${process.pid}.` });
    redis = createGatewayRedis(config, logger)!;
    cache = createCache(config, 'analytics', { logger });
    expect(await waitRedisReady(redis)).toBe(true);
  });

  afterAll(async () => {
    await cache?.close();
    redis?.disconnect();
    if (server) await stopRedis();
  });

  test('limits keep limiting, APQ and the cache miss, one log line per connection per outage', async () => {
    const apq = new RedisKeyValueCache(redis, 'apq:');
    const limiter = createLimiter(redis, { keyPrefix: `rl${port}`, points: 2, duration: 60 });
    const consume = (key: string) =>
      limiter.consume(key).then(
        () => 'allowed',
        (err: unknown) => (err instanceof RateLimiterRes ? 'refused' : `error: ${String(err)}`),
      );

    // Redis up: everything on Redis.
    await apq.set('h1', '{ me { id } }', { ttl: 60 });
    expect(await apq.get('h1')).toBe('{ me { id } }');
    await eventually(async () => {
      await cache.set('report', { total: 1 }, 60);
      return (await cache.get('report')) !== undefined;
    });
    expect([await consume('up'), await consume('up'), await consume('up')]).toEqual(['allowed', 'allowed', 'refused']);

    // Redis hangs (its process frozen with SIGSTOP until we let it go): commands time out,
    // nobody waits for Redis, nothing throws.
    server!.kill('SIGSTOP');
    expect(await apq.get('h1')).toBeUndefined();
    expect(await cache.get('report')).toBeUndefined();
    expect([await consume('hung'), await consume('hung'), await consume('hung')]).toEqual(['allowed', 'allowed', 'refused']);
    server!.kill('SIGCONT');

    // Redis stopped: the same answers, at once (no offline queue).
    await waitRedisReady(redis);
    await stopRedis();
    await eventually(async () => redis.status !== 'ready');
    for (let i = 0; i < 20; i++) {
      expect(await apq.get('h1')).toBeUndefined();
      await apq.set(`h${i}`, 'q', { ttl: 60 });
      expect(await cache.get('report')).toBeUndefined();
    }
    expect([await consume('down'), await consume('down'), await consume('down')]).toEqual(['allowed', 'allowed', 'refused']);
    // reconnection attempts go on meanwhile; the outage is still one line per connection
    await new Promise((r) => setTimeout(r, 1500));
    expect(logged('redis unavailable; using the fallback until it is back', 'gateway')).toBe(1);
    expect(logged('redis unavailable; using the fallback until it is back', cacheName())).toBe(1);

    // Redis back: one line each, and everything on Redis again.
    await startRedis();
    expect(await waitRedisReady(redis, 15_000)).toBe(true);
    await eventually(async () => logged('redis available again', 'gateway') === 1 && logged('redis available again', cacheName()) === 1);
    await apq.set('h2', '{ me { role } }', { ttl: 60 });
    expect(await apq.get('h2')).toBe('{ me { role } }');
    await eventually(async () => {
      await cache.set('report', { total: 2 }, 60);
      return (await cache.get<{ total: number }>('report'))?.total === 2;
    });
    expect(await redis.get(`apq:h2`)).toBe('{ me { role } }');
  });

  const cacheName = () => `cache crm:${config.KAFKA_NAMESPACE}${config.DATABASE_PREFIX}analytics:`;
});
