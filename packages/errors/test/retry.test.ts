import { backoffDelay, retry, type RetryInfo } from '@crm/errors';
import { isTransient } from '@crm/events';

const noWait = async () => undefined;

test('retries until the step succeeds, telling onRetry about each failure', async () => {
  const seen: RetryInfo[] = [];
  const result = await retry(
    async (attempt) => {
      if (attempt < 3) throw new Error(`failure ${attempt}`);
      return `done on ${attempt}`;
    },
    { onRetry: (info) => void seen.push(info), wait: noWait },
  );
  expect(result).toBe('done on 3');
  expect(seen.map((s) => [s.attempt, (s.error as Error).message])).toEqual([
    [1, 'failure 1'],
    [2, 'failure 2'],
  ]);
});

test('gives up after `retries` and throws the last error', async () => {
  let calls = 0;
  await expect(
    retry(
      async () => {
        calls += 1;
        throw new Error(`no ${calls}`);
      },
      { retries: 2, wait: noWait },
    ),
  ).rejects.toThrow('no 3');
  expect(calls).toBe(3);
});

test('an error shouldRetry refuses is thrown at once', async () => {
  class Permanent extends Error {}
  let calls = 0;
  const step = async () => {
    calls += 1;
    throw calls === 1 ? new Error('transient') : new Permanent('permanent');
  };
  await expect(retry(step, { shouldRetry: (err) => !(err instanceof Permanent), wait: noWait })).rejects.toBeInstanceOf(Permanent);
  expect(calls).toBe(2);
});

test('aborting stops a pause and further attempts, with the abort reason', async () => {
  const controller = new AbortController();
  let calls = 0;
  const running = retry(
    async () => {
      calls += 1;
      throw new Error('down');
    },
    {
      baseDelayMs: 60_000,
      signal: controller.signal,
      onRetry: () => controller.abort(new Error('stopping')),
    },
  );
  await expect(running).rejects.toThrow('stopping');
  expect(calls).toBe(1);
});

test('pauses grow by factor up to the cap; jitter only shortens them', () => {
  const exact = { baseDelayMs: 100, maxDelayMs: 1000, jitter: 0 };
  expect([1, 2, 3, 4, 5, 100, 10_000].map((n) => backoffDelay(n, exact))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, { baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 });
    expect(d).toBeGreaterThanOrEqual(200);
    expect(d).toBeLessThanOrEqual(400);
  }
});

test('an infrastructure failure is retried for as long as it lasts (isTransient as shouldRetry, wrapped errors)', async () => {
  // A refused connection, wrapped twice (driver → ORM), failing 20 times before the database is back.
  const refused = () =>
    Object.assign(new Error('wrapped'), {
      cause: Object.assign(new Error('driver'), { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) }),
    });
  const result = await retry(
    async (attempt) => {
      if (attempt <= 20) throw refused();
      return attempt;
    },
    { shouldRetry: isTransient, wait: noWait },
  );
  expect(result).toBe(21);
});
