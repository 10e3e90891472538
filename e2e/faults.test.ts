/**
 * The fault suite: each case a short story on the whole platform, with its OWN Kafka broker and
 * its OWN Postgres (other ports, temp dirs; the shared ones are never touched). Runs where
 * KAFKA_BROKERS is set (CI) and the Postgres server binaries are installed; FAULTS=0 skips it.
 *
 *  1. broker SIGSTOP for BROKER_STOP_S (30 s) under steady createCustomer writes, then SIGCONT;
 *  2. broker kill -9 and restart under steady writes;
 *  3. Postgres stopped for PG_OUTAGE_S (120 s) while the consumers work through a backlog;
 *  4. a poison event and an oversized outbox row;
 *  5. one subgraph's PROCESS (sales-activity, in a process-per-service stack on the same broker and
 *     Postgres) SIGSTOP for SUBGRAPH_STOP_S (30 s) while a customer-deletion saga runs: the saga
 *     ends TIMED_OUT (SAGA_TIMEOUT_MS 10 s), then COMPLETED once the process is continued.
 * After each: every committed write's events delivered (no unsent outbox row), every copy equal to
 * its owner, each effect exactly once (one onboarding task per customer), and no healthy event in a
 * DLQ (only the poison's). Figures: docs/faults.md.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes, randomUUID } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { buildEnvelope, KafkaBus } from '@crm/events';
import { databaseUrlFor } from '@crm/config';
import { eventually } from '@crm/testing';
import { dataOf, readDeadLetters, ROOT, startProcessTestStack, startTestStack, type TestStack, type TestUser } from '@crm/platform';

const PG_BIN = existsSync('/usr/lib/postgresql')
  ? readdirSync('/usr/lib/postgresql')
      .sort()
      .map((v) => `/usr/lib/postgresql/${v}/bin`)
      .pop()
  : undefined;
const enabled = Boolean(process.env.KAFKA_BROKERS) && Boolean(PG_BIN && existsSync(join(PG_BIN, 'pg_ctl'))) && process.env.FAULTS !== '0';
const describeFaults = enabled ? describe : describe.skip;
const BROKER_STOP_S = Number(process.env.BROKER_STOP_S ?? 30);
const PG_OUTAGE_S = Number(process.env.PG_OUTAGE_S ?? 120);
const SUBGRAPH_STOP_S = Number(process.env.SUBGRAPH_STOP_S ?? 30);

const tag = randomBytes(4).toString('hex');
const KAFKA_PORT = 21000 + Math.floor(Math.random() * 800);
const PG_PORT = 23000 + Math.floor(Math.random() * 800);
const brokerEnv = { ...process.env, KAFKA_PORT: String(KAFKA_PORT), KAFKA_CONTROLLER_PORT: String(KAFKA_PORT + 900), KAFKA_DATA_DIR: `/tmp/crm-faults-kafka-${tag}` };
const PG_DIR = `/tmp/crm-faults-pg-${tag}`;

// Asynchronous: the platform under test runs in this process and must keep running meanwhile.
const run = promisify(execFile);
const broker = (cmd: 'start' | 'stop') => run('bash', [join(ROOT, 'scripts/kafka.sh'), cmd], { env: brokerEnv, timeout: 180_000 });
const brokerPid = () => Number(readFileSync(join(brokerEnv.KAFKA_DATA_DIR, 'kafka.pid'), 'utf8').trim());
const asPostgres = (cmd: string, args: string[]) =>
  process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', join(PG_BIN!, cmd), ...args], { timeout: 120_000 }) : run(join(PG_BIN!, cmd), args, { timeout: 120_000 });
const postgres = (cmd: 'start' | 'stop') =>
  cmd === 'start'
    ? asPostgres('pg_ctl', [
        '-D',
        join(PG_DIR, 'data'),
        '-l',
        join(PG_DIR, 'log'),
        '-w',
        '-o',
        `-p ${PG_PORT} -k ${PG_DIR} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
        'start',
      ])
    : asPostgres('pg_ctl', ['-D', join(PG_DIR, 'data'), '-m', 'fast', '-w', 'stop']);
const say = (msg: string) => process.stderr.write(`[faults ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pgArray = (ids: string[]) => `{${ids.join(',')}}`;
const SA = 'sales-activity';

describeFaults('faults', () => {
  let stack: TestStack;
  let rep: TestUser;
  const committed = new Map<string, string>(); // customer id → name
  const poisonKeys = new Set<string>();
  const figures: string[] = [];
  jest.setTimeout(900_000);

  beforeAll(async () => {
    mkdirSync(PG_DIR, { recursive: true });
    if (process.getuid?.() === 0)
      chownSync(PG_DIR, Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), Number(execFileSync('id', ['-g', 'postgres']).toString().trim()));
    await asPostgres('initdb', ['-D', join(PG_DIR, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
    await postgres('start');
    await broker('start');
    stack = await startTestStack({
      env: { KAFKA_BROKERS: `127.0.0.1:${KAFKA_PORT}`, POSTGRES_URL: `postgresql://postgres@127.0.0.1:${PG_PORT}/postgres`, EVENT_MAX_BYTES: '65536' },
    });
    rep = await stack.user('SALES', 'Fay Fault');
  });
  afterAll(async () => {
    console.log(['fault suite figures:', ...figures].join('\n'));
    await stack?.stop().catch(() => undefined);
    try {
      process.kill(brokerPid(), 'SIGCONT');
    } catch {
      /* not running */
    }
    await broker('stop').catch(() => undefined);
    await postgres('stop').catch(() => undefined);
    rmSync(brokerEnv.KAFKA_DATA_DIR, { recursive: true, force: true });
    rmSync(PG_DIR, { recursive: true, force: true });
  });

  /** createCustomer in a loop (about 10/s) until stopped; only answered writes count as committed. */
  function steadyWrites() {
    let running = true;
    let failed = 0;
    const loop = (async () => {
      for (let i = 0; running; i++) {
        const name = `Fault Co ${tag}-${committed.size}-${i}`;
        // An unanswered request counts as failed (it may still have committed: then it is just not checked).
        const r = await Promise.race([
          rep.gql(`mutation($name: String!) { createCustomer(input: { name: $name }) { id } }`, { name }).catch(() => undefined),
          sleep(20_000).then(() => undefined),
        ]);
        const id = r?.data?.createCustomer?.id as string | undefined;
        if (id) committed.set(id, name);
        else failed += 1;
        await sleep(100);
      }
    })();
    return async () => {
      running = false;
      await loop;
      say(`writes stopped: ${committed.size} committed so far, ${failed} failed`);
      return failed;
    };
  }

  /** Every committed write delivered, every copy equal to its owner, each effect once, no healthy dead letter. */
  async function settled(label: string, since: number, ended: number, backlogIds: string[] = []) {
    const ids = [...committed.keys()];
    say(`${label}: checking ${ids.length} committed writes`);
    let told = Date.now();
    await eventually(
      async () =>
        check().catch((err: unknown) => {
          if (Date.now() - told > 30_000) ((told = Date.now()), say(`${label}: not yet: ${String(err)}`));
          throw err;
        }),
      { timeoutMs: 240_000, intervalMs: 1000 },
    );
    async function check() {
      for (const sub of Object.keys(stack.subgraphs)) {
        const [row] = await stack.sql<{ n: string }>(sub, 'SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL');
        if (Number(row!.n) > 0) throw new Error(`${sub}: ${row!.n} unsent outbox rows`);
      }
      const owner = await stack.sql<{ id: string; name: string; assigned_rep_id: string | null }>(
        'customer',
        'SELECT id, name, assigned_rep_id FROM customers WHERE id = ANY(?::uuid[])',
        [pgArray(ids)],
      );
      if (owner.length !== ids.length) throw new Error(`owner has ${owner.length} of ${ids.length} committed customers`);
      const key = (r: { id: string; name?: string; assigned_rep_id: string | null }) => `${r.id}|${r.assigned_rep_id}`;
      const want = new Set(owner.map(key));
      for (const sub of ['sales-activity', 'opportunity']) {
        const copies = await stack.sql<{ id: string; name: string; assigned_rep_id: string | null }>(
          sub,
          'SELECT id, name, assigned_rep_id FROM customer_refs WHERE id = ANY(?::uuid[]) AND NOT deleted',
          [pgArray(ids)],
        );
        const equal = copies.filter((c) => want.has(key(c)) && committed.get(c.id) === c.name).length;
        if (equal !== ids.length) throw new Error(`${sub}: ${equal} of ${ids.length} copies equal the owner`);
      }
      const facts = await stack.sql<{ id: string; assigned_rep_id: string | null }>('analytics', 'SELECT id, assigned_rep_id FROM customer_facts WHERE id = ANY(?::text[])', [
        pgArray(ids),
      ]);
      const equal = facts.filter((f) => want.has(key(f))).length;
      if (equal !== ids.length) throw new Error(`analytics: ${equal} of ${ids.length} facts equal the owner`);
      return true;
    }
    say(`${label}: copies equal the owner`);
    if (backlogIds.length > 0) {
      // every backlog event handled by each consumer of customer.events (none skipped, none dead-lettered)
      await eventually(
        async () => {
          for (const sub of ['auth', 'sales-activity', 'opportunity', 'analytics']) {
            const [row] = await stack.sql<{ n: string }>(sub, 'SELECT count(*) AS n FROM inbox WHERE event_id = ANY(?::uuid[])', [pgArray(backlogIds)]);
            if (Number(row!.n) !== backlogIds.length) throw new Error(`${sub}: ${row!.n} of ${backlogIds.length} backlog events handled`);
          }
          return true;
        },
        { timeoutMs: 240_000, intervalMs: 1000 },
      );
      say(`${label}: backlog handled by every consumer`);
    }
    const seconds = ((Date.now() - since) / 1000).toFixed(1);
    const afterEnd = ((Date.now() - ended) / 1000).toFixed(1);
    // each effect exactly once: one onboarding task per customer
    const tasks = await stack.sql<{ customer_id: string; n: string }>(
      'sales-activity',
      `SELECT customer_id, count(*) AS n FROM tasks WHERE title LIKE 'First contact:%' AND customer_id = ANY(?::uuid[]) GROUP BY customer_id`,
      [pgArray(ids)],
    );
    expect(tasks).toHaveLength(ids.length);
    expect(tasks.every((t) => Number(t.n) === 1)).toBe(true);
    // no healthy event in a DLQ
    const letters = await readDeadLetters(stack.bus as KafkaBus, stack.config.KAFKA_NAMESPACE);
    say(`${label}: ${letters.length} dead letters`);
    expect(letters.filter((l) => !poisonKeys.has(l.key ?? ''))).toEqual([]);
    say(`${label}: settled after ${seconds} s`);
    figures.push(
      `${label}: ${ids.length} committed writes so far, all delivered, copies equal${backlogIds.length ? ' and the backlog handled' : ''} ${afterEnd} s after the fault ended (${seconds} s after it began); dead letters ${letters.length} (poison only)`,
    );
  }

  test(`broker SIGSTOP ${BROKER_STOP_S} s under steady writes`, async () => {
    const stop = steadyWrites();
    await sleep(3000);
    const t0 = Date.now();
    say('broker SIGSTOP');
    process.kill(brokerPid(), 'SIGSTOP');
    await sleep(BROKER_STOP_S * 1000);
    process.kill(brokerPid(), 'SIGCONT');
    const ended = Date.now();
    await sleep(3000);
    const failed = await stop();
    expect(failed).toBe(0); // the API kept accepting writes: events waited in the outbox
    await settled(`broker SIGSTOP ${BROKER_STOP_S} s`, t0, ended);
  });

  test('broker kill -9 and restart under steady writes', async () => {
    const stop = steadyWrites();
    await sleep(3000);
    const t0 = Date.now();
    say('broker kill -9');
    process.kill(brokerPid(), 'SIGKILL');
    await sleep(2000);
    await broker('start');
    const ended = Date.now();
    await sleep(3000);
    const failed = await stop();
    expect(failed).toBe(0);
    await settled('broker kill -9 + restart', t0, ended);
  });

  test(`Postgres stopped ${PG_OUTAGE_S} s while the consumers work through a backlog`, async () => {
    // A backlog: writes, plus customer.updated events (each the owner's current row) for every customer so far.
    const stop = steadyWrites();
    await sleep(3000);
    await stop();
    const owner = await stack.sql<{ id: string; name: string; assigned_rep_id: string | null; size: string | null; investment_profile: string | null }>(
      'customer',
      'SELECT id, name, assigned_rep_id, size, investment_profile FROM customers WHERE id = ANY(?::uuid[])',
      [pgArray([...committed.keys()])],
    );
    const backlog = Array.from({ length: 5 }, () => owner)
      .flat()
      .map((c) => ({
        topic: 'customer.events',
        key: c.id,
        value: JSON.stringify(
          buildEnvelope(
            'customer',
            'customer.updated',
            c.id,
            { customerId: c.id, name: c.name, assignedRepId: c.assigned_rep_id, size: c.size, investmentProfile: c.investment_profile, changes: [] },
            { actorId: null },
          ),
        ),
      }));
    await stack.bus.publish(backlog);
    const t0 = Date.now();
    say(`Postgres stop (${backlog.length} events published)`);
    await postgres('stop');
    await sleep(PG_OUTAGE_S * 1000);
    await postgres('start');
    await settled(
      `Postgres stopped ${PG_OUTAGE_S} s (backlog ${backlog.length} events)`,
      t0,
      Date.now(),
      backlog.map((m) => JSON.parse(m.value).id as string),
    );
  });

  test('a poison event and an oversized outbox row: dead-lettered / parked, the rest flows', async () => {
    const key = `poison-${randomUUID()}`;
    poisonKeys.add(key);
    await stack.bus.publish([{ topic: 'customer.events', key, value: '{"this is": "not an event"' }]);
    const big = buildEnvelope(
      'customer',
      'customer.updated',
      randomUUID(),
      { customerId: randomUUID(), name: 'x'.repeat(100_000), assignedRepId: null, size: null, investmentProfile: null, changes: [] },
      { actorId: null },
    );
    await stack.sql('customer', `INSERT INTO outbox (id, topic, key, type, envelope) VALUES (?, 'customer.events', ?, 'customer.updated', ?)`, [
      big.id,
      big.aggregateId,
      JSON.stringify(big),
    ]);
    const t0 = Date.now();
    const stop = steadyWrites();
    await sleep(3000);
    expect(await stop()).toBe(0);
    await settled('poison event + oversized row', t0, t0);
    const [parked] = await stack.sql<{ failed_at: Date | null; last_error: string }>('customer', 'SELECT failed_at, last_error FROM outbox WHERE id = ?', [big.id]);
    expect(parked!.failed_at).not.toBeNull();
    expect(parked!.last_error).toMatch(/over EVENT_MAX_BYTES/);
    const letters = await eventually(
      async () => {
        const l = (await readDeadLetters(stack.bus as KafkaBus, stack.config.KAFKA_NAMESPACE)).filter((x) => x.key === key);
        return l.length >= 4 ? l : undefined; // auth, sales-activity, opportunity and analytics consume customer.events
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    expect([...new Set(letters.map((l) => l.consumer))]).toEqual(expect.arrayContaining(['auth', 'sales-activity', 'opportunity', 'analytics']));
  });

  test(`one subgraph process SIGSTOP ${SUBGRAPH_STOP_S} s mid-saga: TIMED_OUT, then COMPLETED when it returns, each step once`, async () => {
    // The same broker and Postgres, with each service in a process of its own (the stack above runs in this one).
    const services = await startProcessTestStack({
      env: { KAFKA_BROKERS: `127.0.0.1:${KAFKA_PORT}`, POSTGRES_URL: `postgresql://postgres@127.0.0.1:${PG_PORT}/postgres`, SAGA_TIMEOUT_MS: '10000', DATABASE_POOL_MAX: '3' },
    });
    const sql = async <T>(sub: string, query: string, params: unknown[] = []): Promise<T[]> => {
      const client = new Client({ connectionString: databaseUrlFor(services.config, sub, {}) });
      await client.connect();
      try {
        return (await client.query(query, params)).rows as T[];
      } finally {
        await client.end();
      }
    };
    const stopped = services.pids['sales-activity']!;
    try {
      const admin = await services.admin();
      const manager = await services.user('MANAGER', 'Mia Midsaga');
      const salesRep = await services.user('SALES', 'Sam Stopped');
      const customerId = (await salesRep.gql(`mutation { createCustomer(input: { name: "Paused Partners" }) { id } }`)).data.createCustomer.id as string;
      // its onboarding task: what the saga's sales-activity step must hide, once
      await eventually(async () => (await sql(SA, 'SELECT id FROM tasks WHERE customer_id = $1', [customerId])).length === 1, { timeoutMs: 60_000 });

      say('sales-activity process SIGSTOP');
      process.kill(stopped, 'SIGSTOP');
      const t0 = Date.now();
      const SAGA = `query($id: ID!) { saga(id: $id) { status endedAt missingSteps steps { name status } } }`;
      const sagaId = dataOf<{ id: string }>(await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: customerId }), 'deleteCustomer').id;
      const timedOut = await eventually(
        async () => {
          const saga = (await admin.gql(SAGA, { id: sagaId })).data?.saga;
          return saga?.status === 'TIMED_OUT' ? saga : undefined;
        },
        { timeoutMs: SUBGRAPH_STOP_S * 1000, intervalMs: 500 },
      );
      expect(timedOut.missingSteps).toEqual(['sales-activity.remove-activities']);
      const timedOutAfter = (Date.now() - t0) / 1000;
      await sleep(Math.max(0, t0 + SUBGRAPH_STOP_S * 1000 - Date.now()));
      process.kill(stopped, 'SIGCONT');
      const ended = Date.now();
      say('sales-activity process SIGCONT');
      const done = await eventually(
        async () => {
          const saga = (await admin.gql(SAGA, { id: sagaId })).data?.saga;
          return saga?.status === 'COMPLETED' ? saga : undefined;
        },
        { timeoutMs: 240_000, intervalMs: 500 },
      );
      const completedAfter = (Date.now() - ended) / 1000;
      expect(done.missingSteps).toEqual([]);
      expect(done.endedAt).not.toBeNull();

      // each effect exactly once: the task hidden by this saga, one step event per participant (customer's: the deletion)
      expect(await sql(SA, 'SELECT removed_by_saga FROM tasks WHERE customer_id = $1', [customerId])).toEqual([{ removed_by_saga: sagaId }]);
      for (const [sub, type] of [
        [SA, 'sales-activity.saga_step'],
        ['opportunity', 'opportunity.saga_step'],
        ['customer', 'customer.saga_step'],
      ] as const) {
        const steps = await sql<{ n: string }>(sub, 'SELECT count(*) AS n FROM outbox WHERE type = $1 AND key = $2', [type, sagaId]);
        expect(`${type} ${steps[0]!.n}`).toBe(`${type} 1`);
      }
      expect(done.steps.map((st: { name: string }) => st.name).sort()).toEqual([...new Set(done.steps.map((st: { name: string }) => st.name))].sort());
      // every event delivered, none dead-lettered
      await eventually(
        async () => {
          for (const sub of ['auth', 'customer', SA, 'opportunity', 'analytics']) {
            const [row] = await sql<{ n: string }>(sub, 'SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL');
            if (Number(row!.n) > 0) throw new Error(`${sub}: ${row!.n} unsent outbox rows`);
          }
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      );
      const letters = await readDeadLetters(stack.bus as KafkaBus, services.config.KAFKA_NAMESPACE);
      expect(letters).toEqual([]);
      say(`subgraph SIGSTOP: TIMED_OUT after ${timedOutAfter.toFixed(1)} s, COMPLETED ${completedAfter.toFixed(1)} s after SIGCONT`);
      figures.push(
        `sales-activity process SIGSTOP ${SUBGRAPH_STOP_S} s mid-saga: saga TIMED_OUT ${timedOutAfter.toFixed(1)} s after the stop (SAGA_TIMEOUT_MS 10 s), COMPLETED ${completedAfter.toFixed(1)} s after SIGCONT; each step once; dead letters ${letters.length}`,
      );
    } finally {
      try {
        process.kill(stopped, 'SIGCONT');
      } catch {
        /* exited */
      }
      await services.stop();
    }
  });
});
