/**
 * Crash stories on the embedded default, as a new user runs it: `npm start`'s entry with no
 * POSTGRES_URL, KAFKA_BROKERS or REDIS_URL (they are removed from the platform's environment even
 * where CI sets them for the rest of the suite), so the platform starts its own Postgres under a
 * DATA_DIR of this test and supervises a process per service.
 *
 *  1. kill -9 of each service process in turn (auth, customer, opportunity, sales-activity,
 *     analytics, gateway) under a steady write load through the gateway: the launcher stays up and
 *     the service comes back (the time is logged; the aim is 5 s); then the same for the platform's
 *     Postgres server itself, which the launcher starts again on the same port;
 *  2. kill -9 of the whole platform (launcher and services; its Postgres is left running, as a
 *     kill -9 leaves it) mid-write, then the same entry started again on the same DATA_DIR: it
 *     reuses the server and carries on.
 * After each: every acknowledged write is there; every event of every committed write applied
 * exactly once (one onboarding task per customer, analytics' event count equal to the owner's
 * rows, no unsent outbox row); every acknowledged customer-deletion saga COMPLETED.
 *
 * In CI (.ci/run) the Node 20 pass runs them; EMBEDDED_CRASH=0 skips them (the Node 24 pass).
 *
 * The "applied exactly once" part needs a durable event log on the embedded default (pglog's
 * Postgres-backed bus): the in-process bus bridged over IPC loses an event sent to a process
 * that is dead or restarting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { eventually } from '@crm/testing';
import { readConfig } from '@crm/config';
import { ROOT, testClient, type TestUser } from '@crm/platform';
import { embeddedDataDir, embeddedPlatformEnv, removeEmbeddedDataDir } from './support/embedded-platform';

jest.setTimeout(1_500_000);
const story = process.env.EMBEDDED_CRASH === '0' ? test.skip : test;

const SERVICES = ['auth', 'customer', 'opportunity', 'sales-activity', 'analytics', 'gateway'];
const say = (m: string) => console.log(`[embedded-crash ${new Date().toISOString().slice(11, 19)}] ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const figures: string[] = [];

const dataDir = embeddedDataDir('crm-embedded-crash-');
const id = randomBytes(4).toString('hex');
let env: Record<string, string>;
let platform: Platform | undefined;

interface Platform {
  proc: ChildProcess;
  gatewayUrl: string;
  pgPort: number;
  output(): string;
}

/** `npm start`'s entry on the embedded default, in a process group of its own (kill -9 of the whole platform). */
async function startPlatform(): Promise<Platform> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'apps/platform/src/main.ts')], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const check = () => {
      const m = /CRM graph ready at (\S+) \(embedded Postgres in .* \(port (\d+)\)/.exec(out);
      if (m) resolve(m);
    };
    proc.stdout.on('data', check);
    proc.once('exit', (code, signal) => reject(new Error(`platform exited (${signal ?? code}) before it was ready:\n${out.slice(-3000)}`)));
  });
  return { proc, gatewayUrl: ready[1]!.replace('localhost', '127.0.0.1'), pgPort: Number(ready[2]), output: () => out };
}

async function stopPlatform(p: Platform, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  const exited = new Promise((r) => p.proc.once('exit', r));
  process.kill(signal === 'SIGKILL' ? -p.proc.pid! : p.proc.pid!, signal);
  await exited;
}

/** The embedded Postgres server's process (its postmaster): the postgres process listening on `port`, by its command line. */
function postmasterOn(port: number): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const at = argv.indexOf('-p');
      if (/(^|\/)postgres$/.test(argv[0] ?? '') && at > 0 && argv[at + 1] === String(port)) return Number(entry);
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`no postgres listening on ${port}`);
}

async function ready(gatewayUrl: string): Promise<Record<string, { state: string; pid?: number; restarts: number; lastExit?: string }>> {
  const res = await fetch(new URL('/ready', gatewayUrl), { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { status: string; services: Record<string, { state: string; pid?: number; restarts: number; lastExit?: string }> };
  return body.services;
}

/** SQL on one subgraph's database of the platform's own Postgres. */
async function sql<T>(p: Platform, subgraph: string, query: string, params: unknown[] = []): Promise<T[]> {
  const password = readFileSync(join(dataDir, 'postgres', 'password'), 'utf8').trim();
  const client = new Client({ host: '127.0.0.1', port: p.pgPort, user: 'postgres', password, database: `t${id}_${subgraph.replace(/-/g, '_')}` });
  await client.connect();
  try {
    return (await client.query(query, params)).rows as T[];
  } finally {
    await client.end();
  }
}

const CREATE = `mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`;
const DELETE = `mutation($id: ID!) { deleteCustomer(id: $id) { id } }`;
const SAGA = `query($id: ID!) { saga(id: $id) { status } }`;

/** Acknowledged writes across the whole file (customers created, sagas started). */
const acked = new Set<string>();
const sagas = new Set<string>();
let sales: TestUser;
let admin: TestUser;

/** Two writers: createCustomer as a SALES user, every 8th write a deleteCustomer by the ADMIN (a saga). */
function steadyWrites(): () => Promise<{ ok: number; failed: number }> {
  let running = true;
  let ok = 0;
  let failed = 0;
  let n = 0;
  const deletable: string[] = [];
  const writer = async () => {
    while (running) {
      n += 1;
      try {
        if (n % 8 === 0 && deletable.length > 0) {
          const target = deletable.shift()!;
          const r = await admin.gql(DELETE, { id: target });
          if (r.data?.deleteCustomer?.id) (sagas.add(r.data.deleteCustomer.id), (ok += 1));
          else failed += 1;
        } else {
          const r = await sales.gql(CREATE, { input: { name: `Load ${n}` } });
          const made = r.data?.createCustomer?.id as string | undefined;
          if (made) (acked.add(made), deletable.push(made), (ok += 1));
          else failed += 1;
        }
      } catch {
        failed += 1;
      }
      if (failed > 0 && running) await sleep(50);
    }
  };
  const writers = [writer(), writer()];
  return async () => {
    running = false;
    await Promise.all(writers);
    return { ok, failed };
  };
}

/** Every acknowledged write there, every committed write's events applied exactly once, every saga done. */
async function settled(p: Platform, label: string) {
  const ids = [...acked];
  say(`${label}: checking ${ids.length} acknowledged customers and ${sagas.size} sagas`);
  const owner = await sql<{ id: string }>(p, 'customer', 'SELECT id FROM customers WHERE id = ANY($1::uuid[])', [ids]);
  expect(owner.length).toBe(ids.length);
  let told = Date.now();
  await eventually(
    async () => {
      try {
        for (const sub of ['auth', 'customer', 'opportunity', 'sales-activity', 'analytics']) {
          const [row] = await sql<{ n: string }>(p, sub, 'SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL');
          if (Number(row!.n) > 0) throw new Error(`${sub}: ${row!.n} unsent outbox rows`);
        }
        // analytics applied each committed customer.created (acknowledged or not: its reply may have been lost)
        const [{ n: all }] = (await sql<{ n: string }>(p, 'customer', 'SELECT count(*) AS n FROM customers')) as [{ n: string }];
        const [metric] = await sql<{ count: number }>(p, 'analytics', `SELECT count FROM event_metrics WHERE type = 'customer.created'`);
        if (Number(metric?.count ?? 0) < Number(all)) throw new Error(`analytics applied ${metric?.count ?? 0} customer.created events of ${all} committed customers`);
        const [tasks] = await sql<{ n: string }>(p, 'sales-activity', `SELECT count(DISTINCT customer_id) AS n FROM tasks WHERE title LIKE 'First contact:%'`);
        if (Number(tasks!.n) < Number(all)) throw new Error(`sales-activity made onboarding tasks for ${tasks!.n} of ${all} committed customers`);
        return true;
      } catch (err) {
        if (Date.now() - told > 30_000) ((told = Date.now()), say(`${label}: not yet: ${String(err)}`));
        throw err;
      }
    },
    { timeoutMs: 240_000, intervalMs: 1000 },
  );
  const [{ n: all }] = (await sql<{ n: string }>(p, 'customer', 'SELECT count(*) AS n FROM customers')) as [{ n: string }];
  const [metric] = await sql<{ count: number }>(p, 'analytics', `SELECT count FROM event_metrics WHERE type = 'customer.created'`);
  expect(Number(metric!.count)).toBe(Number(all));
  // one onboarding task per committed customer: the effect exactly once
  const tasks = await sql<{ customer_id: string; n: string }>(
    p,
    'sales-activity',
    `SELECT customer_id, count(*) AS n FROM tasks WHERE title LIKE 'First contact:%' GROUP BY customer_id`,
  );
  expect(tasks.length).toBe(Number(all));
  expect(tasks.filter((t) => Number(t.n) !== 1)).toEqual([]);
  // no saga stuck
  for (const saga of sagas) {
    const status = await eventually(
      async () => {
        const r = await admin.gql(SAGA, { id: saga });
        const s = r.data?.saga?.status as string | undefined;
        return s && s !== 'RUNNING' ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(status).toBe('COMPLETED');
  }
  say(`${label}: settled`);
}

beforeAll(async () => {
  if (process.env.EMBEDDED_CRASH === '0') return;
  ({ env } = await embeddedPlatformEnv(id, dataDir));
  say(`starting the platform on the embedded default in ${dataDir}`);
  platform = await startPlatform();
  const client = testClient(platform.gatewayUrl, readConfig(env, {}));
  admin = await client.admin();
  sales = await client.user('SALES', 'Load Writer');
  say(`ready at ${platform.gatewayUrl}, Postgres on ${platform.pgPort}`);
});

afterAll(async () => {
  if (platform) await stopPlatform(platform).catch(() => undefined);
  // the embedded server stops with the platform; remove its cluster
  removeEmbeddedDataDir(dataDir);
  if (figures.length) console.log(`\nembedded crash stories:\n${figures.join('\n')}`);
});

story(
  'kill -9 of each service in turn, then of its Postgres, under steady writes: the launcher stays up, each comes back, nothing acknowledged lost, each event applied once, no saga stuck',
  async () => {
    const p = platform!;
    const stop = steadyWrites();
    await eventually(async () => acked.size >= 5, { timeoutMs: 60_000 });
    for (const name of SERVICES) {
      const before = (await ready(p.gatewayUrl).catch(() => undefined)) ?? {};
      const pid = before[name]?.pid;
      expect(pid).toBeGreaterThan(0);
      const restarts = before[name]!.restarts;
      const t0 = Date.now();
      process.kill(pid!, 'SIGKILL');
      say(`kill -9 ${name} (pid ${pid})`);
      const after = await eventually(
        async () => {
          const s = await ready(p.gatewayUrl).catch(() => undefined);
          return s?.[name]?.state === 'up' && s[name].restarts === restarts + 1 ? s : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      const back = ((Date.now() - t0) / 1000).toFixed(1);
      say(`${name} back in ${back} s (pid ${after[name]!.pid})`);
      figures.push(`kill -9 ${name}: back in ${back} s`);
      expect(p.proc.exitCode).toBeNull(); // the launcher never died
      const written = acked.size;
      await eventually(async () => acked.size >= written + 3, { timeoutMs: 60_000 });
    }
    // the platform's Postgres itself: started again on the same port, every service reconnects
    const postmaster = postmasterOn(p.pgPort);
    const t0 = Date.now();
    process.kill(postmaster, 'SIGKILL');
    say(`kill -9 the embedded Postgres (pid ${postmaster})`);
    const written = acked.size;
    await eventually(async () => acked.size >= written + 3, { timeoutMs: 120_000, intervalMs: 100 });
    const back = ((Date.now() - t0) / 1000).toFixed(1);
    say(`writes acknowledged again ${back} s after the Postgres kill`);
    figures.push(`kill -9 of the embedded Postgres: writes acknowledged again in ${back} s`);
    expect(p.output()).toMatch(/embedded Postgres restarted/);
    expect(postmasterOn(p.pgPort)).not.toBe(postmaster);
    // the gateway's /ready shows it beside the services
    const shown = await eventually(async () => (await ready(p.gatewayUrl).catch(() => undefined))?.postgres, { timeoutMs: 10_000 });
    expect(shown).toMatchObject({ state: 'up', restarts: 1, lastExit: 'SIGKILL', pid: postmasterOn(p.pgPort) });
    expect(p.proc.exitCode).toBeNull();

    const { ok, failed } = await stop();
    say(`writes: ${ok} acknowledged, ${failed} failed while a service or the database was down`);
    expect(p.output()).not.toMatch(/GIVEN UP/);
    await settled(p, 'each service and the database killed in turn');
  },
);

story('kill -9 of the whole platform mid-write, then npm start again on the same .data: nothing acknowledged lost, each event applied once, no saga stuck', async () => {
  const stop = steadyWrites();
  const written = acked.size;
  await eventually(async () => acked.size >= written + 5, { timeoutMs: 60_000 });
  say('kill -9 of the launcher and every service');
  await stopPlatform(platform!, 'SIGKILL');
  await stop();
  const t0 = Date.now();
  platform = await startPlatform();
  const back = ((Date.now() - t0) / 1000).toFixed(1);
  expect(platform.output()).toMatch(/reusing the server a killed run left behind/);
  say(`platform ready again in ${back} s`);
  figures.push(`kill -9 of the whole platform: ready again in ${back} s (its Postgres reused)`);
  const client = testClient(platform.gatewayUrl, readConfig(env, {}));
  admin = await client.admin();
  // the same SALES user, logged in again (testClient's users have this password)
  const login = await client.gql(`mutation($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }`, {
    email: sales.email,
    password: 'password-1234',
  });
  const token = login.data.login.accessToken as string;
  sales = { ...sales, token, gql: (q, v) => client.gql(q, v, token) };
  const stop2 = steadyWrites();
  const more = acked.size;
  await eventually(async () => acked.size >= more + 5, { timeoutMs: 60_000 });
  await stop2();
  await settled(platform, 'whole platform killed and started again');
});
