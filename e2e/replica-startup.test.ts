/**
 * Two replicas of a subgraph starting at once against an empty database: migrations run once
 * (the second replica waits on the advisory lock, then finds nothing pending) and both serve.
 * Needs a real Postgres (each replica has its own connection pool): runs where POSTGRES_URL is set.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { gatewaySigningKey, signIdentity, startSubgraph, type SubgraphRuntime } from '@crm/runtime';
import { readConfig } from '@crm/config';
import { dropTestDatabases, SUBGRAPHS } from '@crm/platform';
import { kitMigrations } from '../packages/database/src/kit-migration';

const describeWithPostgres = process.env.POSTGRES_URL ? describe : describe.skip;
const customer = SUBGRAPHS.find((s) => s.name === 'customer')!;

/** A logger whose lines are kept, to count who applied migrations. */
function recordingLogger(lines: string[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return pino({ level: 'info' }, sink);
}

describeWithPostgres('replicas starting at once', () => {
  const config = readConfig(process.env, { NODE_ENV: 'test', DATABASE_PREFIX: `t${randomBytes(4).toString('hex')}_`, EVENT_BUS: 'memory', DATABASE_POOL_MAX: '3' });
  const replicas: SubgraphRuntime[] = [];

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop().catch(() => undefined)));
    await dropTestDatabases(config);
  });

  test('migrate an empty database once and both serve', async () => {
    const logs: string[][] = [[], []];
    const started = await Promise.allSettled(logs.map((lines) => startSubgraph(customer, { config, port: 0, logger: recordingLogger(lines) })));
    for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
    expect(started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'started'))).toEqual(['started', 'started']);

    // Exactly one replica applied the migrations; the migration table lists each one once.
    const applied = logs.map((lines) => lines.filter((l) => l.includes('"msg":"migrations applied"')).length);
    expect(applied.sort()).toEqual([0, 1]);
    const rows = await replicas[0]!.fork().getConnection().execute<{ name: string }[]>('SELECT name FROM mikro_orm_migrations ORDER BY id');
    const names = rows.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(customer.migrations.length + kitMigrations.length); // + the kit's own (outbox/inbox, …)

    // Each keeps at most DATABASE_POOL_MAX connections (what sizing against max_connections counts).
    for (const replica of replicas) expect(replica.db.orm.config.get('pool')).toMatchObject({ max: 3 });

    // Both serve: ready, and answer a signed query from the same tables.
    const identity = { userId: randomUUID(), role: 'ADMIN' as const, email: 'admin@test.local' };
    for (const replica of replicas) {
      const ready = await fetch(`http://127.0.0.1:${replica.port}/ready`);
      expect(ready.status).toBe(200);
      const body = JSON.stringify({ query: '{ customers(first: 1) { totalCount } }' });
      const res = await fetch(replica.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signIdentity(identity, gatewaySigningKey(config), { subgraph: 'customer', method: 'POST', body }) },
        body,
      });
      expect(await res.json()).toEqual({ data: { customers: { totalCount: 0 } } });
    }
  });
});
