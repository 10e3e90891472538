/**
 * The kit's cache port, as analytics uses it for reports: in memory, on Redis when REDIS_URL is set,
 * and a Redis that does not answer is a miss, never an error.
 */
import { createCache, type Cache } from '@crm/runtime';
import { readConfig } from '@crm/config';

const config = (over: Record<string, string>) => readConfig({}, { LOG_LEVEL: 'silent', KAFKA_NAMESPACE: `c${process.pid}.`, DATABASE_PREFIX: 'tcache_', ...over });

async function roundTrip(a: Cache, b: Cache) {
  expect(await a.get('report:x')).toBeUndefined();
  await a.set('report:x', { total: 3, at: '2026-01-01T00:00:00.000Z' }, 60);
  await a.set('report:y', [1, 2], 60);
  await a.set('other:z', 'z', 60);
  expect(await a.get('report:x')).toEqual({ total: 3, at: '2026-01-01T00:00:00.000Z' });
  expect(await b.get('report:x')).toBeUndefined(); // another namespace (another stack) never sees it
  await a.delByPrefix('report:');
  expect(await a.get('report:x')).toBeUndefined();
  expect(await a.get('report:y')).toBeUndefined();
  expect(await a.get('other:z')).toBe('z');
  await a.del('other:z');
  expect(await a.get('other:z')).toBeUndefined();
}

test('memory cache: values, namespaces, prefix deletion and expiry', async () => {
  const a = createCache(config({}), 'analytics');
  const b = createCache(config({ DATABASE_PREFIX: 'tother_' }), 'analytics');
  expect(a.kind).toBe('memory');
  await roundTrip(a, b);
  await a.set('short', 1, 0.05);
  await new Promise((r) => setTimeout(r, 120));
  expect(await a.get('short')).toBeUndefined();
  await a.close();
  await b.close();
});

const redisUrl = process.env.REDIS_URL;
(redisUrl ? test : test.skip)('redis cache: values, namespaces and prefix deletion', async () => {
  const a = createCache(config({ REDIS_URL: redisUrl! }), 'analytics');
  const b = createCache(config({ REDIS_URL: redisUrl!, DATABASE_PREFIX: 'tother_' }), 'analytics');
  expect(a.kind).toBe('redis');
  // connects asynchronously: until then it is a miss
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await a.set('ping', 1, 5);
    await b.set('ping', 1, 5);
    if ((await a.get('ping')) === 1 && (await b.get('ping')) === 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await roundTrip(a, b);
  await a.close();
  await b.close();
});

test('a Redis that is down is a miss, not an error', async () => {
  const down = createCache(config({ REDIS_URL: 'redis://127.0.0.1:1' }), 'analytics');
  await expect(down.set('k', 1, 60)).resolves.toBeUndefined();
  await expect(down.get('k')).resolves.toBeUndefined();
  await expect(down.delByPrefix('k')).resolves.toBeUndefined();
  await down.close();
});
