/**
 * Benchmark 2: the CRM itself, through the gateway, against real Postgres, Kafka and Redis.
 *
 *   npm run bench:crm                                  # defaults below
 *   DURATION=5 WARMUP=2 CONNECTIONS=20 npm run bench:crm   # short run
 *   CPU_PROF=/tmp/crm-prof SCENARIOS=customers DURATION=10 NO_REPORT=1 npm run bench:crm   # profile one read path
 *     (STACK=single: this process, per scenario; STACK=multi: each service process over its whole life, --cpu-prof)
 *
 * 1. Starts the whole platform — STACK=multi (default, as `npm start`): the gateway and each subgraph
 *    in a process of its own (startProcessTestStack; GATEWAY_WORKERS gateway cluster workers);
 *    STACK=single: all in this process (startTestStack) — with throwaway databases t<id>_*, Kafka
 *    namespace t<id>., Redis keys under it; all dropped / deleted at the end) with production settings:
 *    NODE_ENV=production (errors masked, no introspection/Sandbox/suggestions, graphql-js production
 *    mode), random 32+ char secrets, LOG_LEVEL=warn, OUTBOX_POLL_MS 500 (the default), and
 *    RATE_LIMIT_ENABLED=false (the per-user budget of 100 points / 15 min would refuse the load).
 * 2. Users through the API (ADMIN, MANAGERS managers, REPS SALES reps), then SEED_CUSTOMERS customers
 *    with meetings, tasks and approval requests by bulk SQL into each subgraph's own database plus
 *    the projections its events would have produced (customer_refs in sales-activity and
 *    opportunity; customer/meeting/task/approval facts in analytics, report versions bumped), and a
 *    row-count consistency check across the databases (bench/crm/seed.ts).
 * 3. autocannon in a child process (bench/crm/load.mjs): once JIT_WARMUP s of every read scenario mixed
 *    (unmeasured: V8 compiles the hot paths), then per row WARMUP s, then DURATION s at CONNECTIONS
 *    for login, the customer list (one fixed query, and varied: pages 1–4 by cursor and search
 *    terms), the dashboard, login and the varied list at the same time, and createCustomer.
 *    INBOUND_DEDUPE=false in the environment turns the gateway's identical-read sharing off (the
 *    headline figures: five managers repeating one query is exactly what it collapses).
 * 4. Saga completion time (SAGAS deleteCustomer sagas, polled every 20 ms) and event-to-subscriber
 *    latency (SUB_N graphql-ws subscribers, SUB_EVENTS events, as bench/subscriptions.ts).
 * Writes bench/results/crm.md and crm.json (RESULTS_DIR). Not part of `npm test`.
 */
import { execSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessStack, TestClient, TestStack, TestUser } from '@crm/platform';
import { cpuMs, cpuMsOrZero, dist, ms, num, sleep, uptime, type Dist } from './measure';

/** What the benchmark needs of either kind of stack. */
type BenchStack = (TestStack | (ProcessStack & TestClient)) & Pick<TestStack, 'config' | 'gatewayUrl' | 'stop'> & { bus: { kind: TestStack['bus']['kind'] } };

const DEFAULT_SERVICES = {
  POSTGRES_URL: 'postgresql://postgres@127.0.0.1:5432/postgres',
  KAFKA_BROKERS: '127.0.0.1:9092',
  REDIS_URL: 'redis://127.0.0.1:6379',
};
for (const [k, v] of Object.entries(DEFAULT_SERVICES)) {
  if (!process.env[k]) {
    process.env[k] = v;
    console.log(`${k} not set: using ${v}`);
  }
}
// Before anything imports graphql-js / Apollo: their production code paths.
process.env.NODE_ENV = 'production';

const DURATION = num('DURATION', 20);
const WARMUP = num('WARMUP', 5);
/** Once, before round 1: every read scenario's requests mixed, unmeasured, so V8 has compiled the hot paths (round 1 ran ~25 % slower without it). */
const JIT_WARMUP = num('JIT_WARMUP', 20);
const CONNECTIONS = num('CONNECTIONS', 20);
const SEED_CUSTOMERS = num('SEED_CUSTOMERS', 10_000);
const REPS = num('REPS', 20);
const MANAGERS = num('MANAGERS', 5);
const SAGAS = num('SAGAS', 20);
const ROUNDS = num('ROUNDS', 3);
const SUB_N = num('SUB_N', 50);
const SUB_EVENTS = num('SUB_EVENTS', 5);
const SCENARIOS = (process.env.SCENARIOS ?? 'login,customers,customers-varied,dashboard,login+list,createCustomer,backlog,saga,subscriptions').split(',');
const BACKLOG = num('BACKLOG', 10_000);
const STACK = process.env.STACK ?? 'multi';
if (STACK !== 'multi' && STACK !== 'single') throw new Error('STACK must be multi or single');
const RESULTS_DIR = process.env.RESULTS_DIR ?? join(__dirname, 'results');
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'warn';

const CUSTOMERS_QUERY = `query CustomerList { customers(first: 50) { edges { node { id name assignedRep { name } meetings { totalCount } tasks { edges { node { title } } } approvalRequests { status } } } } }`;
const DASHBOARD_QUERY = `query Dashboard($from: DateTime!, $to: DateTime!) {
  salesSummary(from: $from, to: $to) { customersCreated meetingsHeld tasksCreated tasksCompleted approvalsRequested approvalsApproved approvedAmount }
  customerStats { total unassigned bySize { key count } byInvestmentProfile { key count } }
  approvalStats { pending approved rejected recalled cancelled meanDecisionSeconds }
  taskCompletionRate { total completed rate }
}`;
const VARIED_QUERY = `query CustomerPage($search: String, $after: String) { customers(first: 50, search: $search, after: $after) { pageInfo { endCursor } edges { node { id name assignedRep { name } meetings { totalCount } tasks { edges { node { title } } } approvalRequests { status } } } } }`;
const LOGIN = `mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }`;
const CREATE = `mutation Create($input: CreateCustomerInput!) { createCustomer(input: $input) { id name } }`;

/** The predecessor's targets (seconds → ms) and the goal (p99 < 25 ms for list and dashboard). */
const TARGETS: Record<string, { target: number; goal?: number }> = {
  login: { target: 100 },
  customers: { target: 200, goal: 150 },
  'customers-varied': { target: 200, goal: 150 },
  dashboard: { target: 500, goal: 25 },
  createCustomer: { target: NaN },
  'customers@1': { target: 200, goal: 25 },
  'customers-varied@1': { target: 200, goal: 25 },
  'dashboard@1': { target: 500, goal: 25 },
  'login+list:login': { target: 100 },
  'login+list:list': { target: 200, goal: 150 },
};
/** Search terms of the varied list (words of bench/crm/seed.ts names; one matches nothing). */
const SEARCH_TERMS = ['Harbor', 'Summit Capital', 'labs', 'Group', 'zzz-no-match'];

interface Load {
  /** CPU time of the platform's processes (not Postgres, Kafka, Redis) per request, warm-up included. */
  cpuMsPerRequest?: number;
  requests: number;
  rps: number;
  latency: { p50: number; p90: number; p99: number; max: number; mean: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  gqlErrors: number;
  sampleError: string | null;
  duration: number;
  connections?: number;
}

async function runLoad(
  url: string,
  entries: { body: string; authorization?: string }[],
  connections = CONNECTIONS,
  times = { duration: DURATION, warmup: WARMUP },
): Promise<Load & { sent: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'crm-bench-'));
  const spec = join(dir, 'spec.json');
  writeFileSync(spec, JSON.stringify({ url, connections, duration: times.duration, warmup: times.warmup, entries }));
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [join(__dirname, 'crm', 'load.mjs'), spec], {
        stdio: ['ignore', 'pipe', 'inherit'],
        // The load generator is not profiled even when this process is.
        env: { ...process.env, NODE_OPTIONS: '' },
      });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('error', reject);
      // 'close', not 'exit': the output may still be unread when the process has exited
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`load generator exited with ${code}`))));
    });
    const last = out.trim().split('\n').pop() ?? '';
    if (!last.startsWith('{')) throw new Error(`load generator printed no result: ${JSON.stringify(out.slice(-300))}`);
    const { warmup, measured } = JSON.parse(last) as { warmup: Load | null; measured: Load };
    return { ...measured, sent: measured.requests + (warmup?.requests ?? 0) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * CPU_PROF=<dir>: a V8 CPU profile of this process (gateway + subgraphs) over each scenario's
 * warm-up + measured load only, written to <dir>/<scenario>.cpuprofile (summary:
 * `node bench/crm/profile-top.mjs <file>`). The load generator is another process, not profiled.
 */
async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = process.env.CPU_PROF;
  if (!dir || STACK === 'multi') return fn();
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
    console.log(`  CPU profile → ${join(dir, `${name}.cpuprofile`)}`);
  }
}

async function main() {
  const started = new Date();
  const loadBefore = uptime();
  console.log(`load average before: ${loadBefore.join(' / ')}`);
  const { startTestStack, startProcessTestStack } = await import('@crm/platform');
  const { generateKeySet } = await import('@crm/runtime');
  const { eventually } = await import('@crm/testing');
  const { seedBulk, checkConsistency, withDb } = await import('./crm/seed');
  const { dbNow, drainBacklog, handledSince } = await import('./crm/consumers');

  const t0 = performance.now();
  const keys = generateKeySet();
  const env = {
    NODE_ENV: 'production',
    // production starts only with the signing keys: the launcher hands each process its own; one process (STACK=single) holds them all
    ...keys,
    SERVICE_SIGNING_KEY: keys.CUSTOMER_SERVICE_KEY!,
    LOG_LEVEL,
    RATE_LIMIT_ENABLED: 'false',
    OUTBOX_POLL_MS: '500',
    ACCESS_TOKEN_TTL_SECONDS: '7200',
    // the production default, not the test stacks' smaller pools (the runs in bench/results used 10)
    DATABASE_POOL_MAX: process.env.DATABASE_POOL_MAX ?? '10',
  };
  const stack: BenchStack =
    STACK === 'multi'
      ? await startProcessTestStack({ env, execArgv: process.env.CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF}`] : [] })
      : await startTestStack({ env });
  console.log(
    `stack up in ${((performance.now() - t0) / 1000).toFixed(1)} s (${STACK === 'multi' ? `a process per service, ${stack.config.GATEWAY_WORKERS} gateway worker(s)` : 'one process'}, ${stack.bus.kind}, prefix ${stack.config.DATABASE_PREFIX}) at ${stack.gatewayUrl}`,
  );
  if ('pids' in stack) console.log(`process ids (CPU profiles are named by them): ${JSON.stringify(stack.pids)}`);
  // Gateway workers (GATEWAY_WORKERS > 1) are the gateway process's children: not counted then.
  const servicePids = 'pids' in stack ? Object.values(stack.pids) : [process.pid];
  const results: Record<string, unknown> = {};
  // Ctrl-C / SIGTERM: still drop the throwaway databases and topics.
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      if (stopping) return;
      stopping = true;
      console.error(`${sig}: stopping the stack and dropping its databases and topics…`);
      void stack
        .stop()
        .then(() => deleteTopics(stack))
        .catch(() => undefined)
        .finally(() => process.exit(130));
    });
  }
  try {
    // ------------------------------------------------------------------ users (through the API)
    const admin = await stack.admin();
    const managers: TestUser[] = [];
    for (let i = 0; i < MANAGERS; i++) managers.push(await stack.user('MANAGER', `Manager ${i + 1}`));
    const reps: TestUser[] = [];
    for (let i = 0; i < REPS; i++) reps.push(await stack.user('SALES', `Rep ${String(i + 1).padStart(2, '0')}`));
    // The reps' user.created events must have reached customer (rep directory) and analytics.
    await eventually(
      async () => {
        const n = await withDb(stack, 'customer', async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM reps')).rows[0]!.n);
        return n >= REPS + MANAGERS + 1;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );

    // ------------------------------------------------------------------ bulk seed
    const ts = performance.now();
    const seeded = await seedBulk(stack, { customers: SEED_CUSTOMERS, reps: reps.map((r) => r.id), managers: managers.map((m) => m.id) });
    const seedSeconds = (performance.now() - ts) / 1000;
    console.log(`seeded in ${seedSeconds.toFixed(1)} s: ${JSON.stringify(seeded)}`);
    const consistency = await checkConsistency(stack);
    if (!consistency.ok) throw new Error(`projections inconsistent after the seed: ${JSON.stringify(consistency)}`);
    const manager = managers[0]!;
    // Sanity: the list sees nested data, the dashboard sees the seed.
    const list = await manager.gql(CUSTOMERS_QUERY);
    if (list.errors || list.data.customers.edges.length !== 50) throw new Error(`customer list: ${JSON.stringify(list.errors ?? list.data)}`);
    const nested = list.data.customers.edges.map((e: any) => e.node);
    const sanity = {
      withRep: nested.filter((c: any) => c.assignedRep?.name).length,
      meetings: nested.reduce((a: number, c: any) => a + c.meetings.totalCount, 0),
      tasks: nested.reduce((a: number, c: any) => a + c.tasks.edges.length, 0),
      approvals: nested.reduce((a: number, c: any) => a + c.approvalRequests.length, 0),
    };
    const to = new Date();
    const from = new Date(to.getTime() - 30 * 86_400_000);
    const dashVars = { from: from.toISOString(), to: to.toISOString() };
    const dash = await manager.gql(DASHBOARD_QUERY, dashVars);
    if (dash.errors || dash.data.customerStats.total !== SEED_CUSTOMERS) throw new Error(`dashboard: ${JSON.stringify(dash.errors ?? dash.data)}`);
    console.log(`first page of 50: ${JSON.stringify(sanity)}; customerStats.total ${dash.data.customerStats.total}`);
    // The varied list: pages 1–4 (by cursor) and search terms, each manager in turn — real work, not
    // one repeated document.
    const varied: { query: string; variables: Record<string, unknown> }[] = [];
    let after: string | null = null;
    for (let page = 0; page < 4; page++) {
      varied.push({ query: VARIED_QUERY, variables: { after } });
      const r: { data?: any; errors?: unknown } = await manager.gql(VARIED_QUERY, { after });
      after = r.data?.customers?.pageInfo?.endCursor ?? null;
      if (r.errors || !after) throw new Error(`paging the customer list: ${JSON.stringify(r.errors ?? r.data)}`);
    }
    for (const search of SEARCH_TERMS) varied.push({ query: VARIED_QUERY, variables: { search } });

    // ------------------------------------------------------------------ load
    const url = stack.gatewayUrl;
    const bearer = (u: TestUser) => `Bearer ${u.token}`;
    const rounds: Record<string, Load[]> = {};
    let round = 0;
    type Entries = { body: string; authorization?: string }[];
    const record = (name: string, r: Load, connections: number, before: number[]) => {
      (rounds[name] ??= []).push({ ...r, connections, loadavgBefore: before } as Load);
      console.log(
        `  ${name}: ${r.cpuMsPerRequest !== undefined ? `${r.cpuMsPerRequest} ms CPU/request, ` : ''}${r.rps.toFixed(0)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}, GraphQL errors ${r.gqlErrors}${r.sampleError ? ` (${r.sampleError})` : ''}`,
      );
    };
    // Where the CPU goes: each service process, and the Postgres backends serving this stack's
    // databases (same machine: /proc); transactions committed in those databases (statements
    // outside a transaction count one each).
    const prefix = stack.config.DATABASE_PREFIX;
    const pgStats = () =>
      withDb(stack, 'customer', async (c) => {
        const pids = (await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE starts_with(datname, $1)', [prefix])).rows.map((r) => r.pid);
        const xacts = (await c.query<{ n: string }>('SELECT sum(xact_commit + xact_rollback) AS n FROM pg_stat_database WHERE starts_with(datname, $1)', [prefix])).rows[0]!.n;
        return { pids, xacts: Number(xacts) };
      });
    const cpuOf = cpuMsOrZero;
    const breakdown = () => Object.fromEntries(Object.entries('pids' in stack ? stack.pids : { platform: process.pid }).map(([k, pid]) => [k, cpuOf(pid)]));
    const scenario = async (name: string, entries: Entries, connections = CONNECTIONS) => {
      if (!SCENARIOS.includes(name.replace(/@1$/, ''))) return;
      const before = uptime();
      console.log(`[round ${round + 1}/${ROUNDS}] ${name}: ${WARMUP} s warm-up + ${DURATION} s at ${connections} connection(s) (load ${before.join(' / ')})…`);
      const pg0 = await pgStats();
      const pgCpu0 = new Map(pg0.pids.map((pid) => [pid, cpuOf(pid)]));
      const by0 = breakdown();
      const cpu0 = cpuMs(...servicePids);
      const r = await profiled(round ? `${name}-${round + 1}` : name, () => runLoad(url, entries, connections));
      const cpu1 = cpuMs(...servicePids);
      const by1 = breakdown();
      const pg1 = await pgStats();
      const pgCpu = [...new Set([...pg0.pids, ...pg1.pids])].reduce((a, pid) => a + Math.max(0, cpuOf(pid) - (pgCpu0.get(pid) ?? 0)), 0);
      const perRequest = (x: number) => Number((x / r.sent).toFixed(2));
      const cpuByProcess = Object.fromEntries(Object.keys(by1).map((k) => [k, perRequest(by1[k]! - by0[k]!)]));
      record(
        name,
        {
          ...r,
          cpuMsPerRequest: perRequest(cpu1 - cpu0),
          postgresCpuMsPerRequest: perRequest(pgCpu),
          cpuByProcess,
          transactionsPerRequest: perRequest(pg1.xacts - pg0.xacts),
        } as Load,
        connections,
        before,
      );
      console.log(
        `    CPU ms/request by process ${JSON.stringify(cpuByProcess)}, Postgres backends ${perRequest(pgCpu)}, transactions/request ${perRequest(pg1.xacts - pg0.xacts)}`,
      );
    };
    /** Two loads at once (each its own autocannon process): login's p99 next to the list's. */
    const together = async (name: string, a: [string, Entries, number], b: [string, Entries, number]) => {
      if (!SCENARIOS.includes(name)) return;
      const before = uptime();
      console.log(`[round ${round + 1}/${ROUNDS}] ${name}: ${a[0]} at ${a[2]} + ${b[0]} at ${b[2]} connection(s) at the same time (load ${before.join(' / ')})…`);
      const [ra, rb] = await profiled(round ? `${name}-${round + 1}` : name, () => Promise.all([runLoad(url, a[1], a[2]), runLoad(url, b[1], b[2])]));
      record(`${name}:${a[0]}`, ra, a[2], before);
      record(`${name}:${b[0]}`, rb, b[2], before);
    };
    const catchUps: { seconds: number; afterLastWrite: number; consistent: boolean; counts: unknown; handled: Record<string, { events: number; seconds: number }> }[] = [];
    const loginEntries = reps.map((r) => ({ body: JSON.stringify({ query: LOGIN, variables: { email: r.email, password: 'password-1234' } }) }));
    const listEntries = managers.map((m) => ({ body: JSON.stringify({ query: CUSTOMERS_QUERY }), authorization: bearer(m) }));
    // every (query, manager) pair, interleaved so consecutive requests differ in both
    const variedEntries = varied.flatMap((q, i) => managers.map((_, j) => ({ body: JSON.stringify(q), authorization: bearer(managers[(i + j) % managers.length]!) })));
    const dashEntries = managers.map((m) => ({ body: JSON.stringify({ query: DASHBOARD_QUERY, variables: dashVars }), authorization: bearer(m) }));
    for (round = 0; round < ROUNDS; round++) {
      if (round === 0 && JIT_WARMUP > 0) {
        console.log(`JIT warm-up: ${JIT_WARMUP} s of every read scenario's requests mixed, not measured…`);
        await runLoad(url, [...listEntries, ...variedEntries, ...dashEntries, loginEntries[0]!], CONNECTIONS, { duration: JIT_WARMUP, warmup: 0 });
      }
      await scenario('login', loginEntries);
      await scenario('customers', listEntries);
      await scenario('customers-varied', variedEntries);
      await scenario('dashboard', dashEntries);
      // The same read paths one request at a time: latency without queueing behind other requests.
      if (process.env.SINGLE !== '0') {
        await scenario('customers@1', listEntries, 1);
        await scenario('customers-varied@1', variedEntries, 1);
        await scenario('dashboard@1', dashEntries, 1);
      }
      // argon2id runs on libuv's thread pool (@node-rs/argon2's async hash/verify), not the event loop:
      // logins at 5 connections must not stall the list at 20.
      await together('login+list', ['login', loginEntries, 5], ['list', variedEntries, CONNECTIONS]);
      const loadStart = SCENARIOS.includes('createCustomer') ? await dbNow(stack) : '';
      await scenario(
        'createCustomer',
        reps.map((r, i) => ({
          body: JSON.stringify({
            query: CREATE,
            variables: {
              input: { name: `Bench Load __N__`, email: `load__N__@bench.example`, size: ['SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE'][i % 4], investmentProfile: 'MODERATE' },
            },
          }),
          authorization: bearer(r),
        })),
      );

      // Event-driven projections catch up with the createCustomer load (before the next round reads).
      if (SCENARIOS.includes('createCustomer')) {
        const tc = performance.now();
        let checkedAt = Date.now();
        const c = await eventually(
          async () => {
            checkedAt = Date.now();
            const r = await checkConsistency(stack);
            return r.ok ? r : undefined;
          },
          { timeoutMs: 300_000, intervalMs: 500 },
        ).catch(async () => checkConsistency(stack));
        // Also from the last write's commit (answers may still arrive after the load generator stops).
        const lastWrite = await withDb(stack, 'customer', async (db) => (await db.query<{ at: Date }>('SELECT max(created_at) AS at FROM customers')).rows[0]!.at);
        catchUps.push({
          seconds: Number(((performance.now() - tc) / 1000).toFixed(1)),
          afterLastWrite: Number(((checkedAt - lastWrite.getTime()) / 1000).toFixed(1)),
          consistent: c.ok,
          counts: c.counts,
          handled: await handledSince(stack, loadStart),
        });
        console.log(`projections after the createCustomer load: ${JSON.stringify(catchUps[catchUps.length - 1])}`);
      }
    }
    // Per scenario, the median over rounds of each figure (a shared, noisy machine).
    const med = (xs: number[]) => dist(xs).p50;
    const loads: Record<string, Load & { rounds: Load[] }> = {};
    for (const [name, rs] of Object.entries(rounds)) {
      loads[name] = {
        ...(rs[0]!.cpuMsPerRequest !== undefined ? { cpuMsPerRequest: med(rs.map((r) => r.cpuMsPerRequest!)) } : {}),
        requests: med(rs.map((r) => r.requests)),
        rps: med(rs.map((r) => r.rps)),
        latency: {
          p50: med(rs.map((r) => r.latency.p50)),
          p90: med(rs.map((r) => r.latency.p90)),
          p99: med(rs.map((r) => r.latency.p99)),
          max: med(rs.map((r) => r.latency.max)),
          mean: med(rs.map((r) => r.latency.mean)),
        },
        errors: rs.reduce((a, r) => a + r.errors, 0),
        timeouts: rs.reduce((a, r) => a + r.timeouts, 0),
        non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
        gqlErrors: rs.reduce((a, r) => a + r.gqlErrors, 0),
        sampleError: rs.find((r) => r.sampleError)?.sampleError ?? null,
        duration: DURATION,
        connections: rs[0]!.connections,
        rounds: rs,
      };
    }
    results.loads = loads;
    if (catchUps.length) {
      results.projectionCatchUp = {
        seconds: med(catchUps.map((c) => c.seconds)),
        afterLastWrite: med(catchUps.map((c) => c.afterLastWrite)),
        consistent: catchUps.every((c) => c.consistent),
        rounds: catchUps,
      };
    }

    // ------------------------------------------------------------------ consumer capacity
    if (SCENARIOS.includes('backlog')) {
      console.log(`backlog: ${BACKLOG} customer.updated events published at once…`);
      results.backlog = await drainBacklog(stack, BACKLOG);
      console.log(`backlog: ${JSON.stringify(results.backlog)}`);
      const after = await checkConsistency(stack);
      if (!after.ok) throw new Error(`projections inconsistent after the backlog: ${JSON.stringify(after)}`);
    }

    // ------------------------------------------------------------------ sagas
    if (SCENARIOS.includes('saga')) {
      const targets: string[] = [];
      for (let i = 0; i < SAGAS; i++) {
        const rep = reps[i % reps.length]!;
        const c = await rep.gql(CREATE, { input: { name: `Saga Co ${i}` } });
        const id = c.data?.createCustomer?.id as string;
        if (!id) throw new Error(`createCustomer: ${JSON.stringify(c.errors)}`);
        await eventually(
          async () =>
            (
              await rep.gql(`mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id } }`, {
                input: { customerId: id, startsAt: new Date().toISOString(), summary: 'Intro' },
              })
            ).data?.recordMeeting,
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        await eventually(
          async () =>
            (await rep.gql(`mutation($input: CreateTaskInput!) { createTask(input: $input) { id } }`, { input: { customerId: id, title: 'Follow up' } })).data?.createTask,
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        targets.push(id);
      }
      await sleep(1000);
      const times: number[] = [];
      const outcomes: Record<string, number> = {};
      for (const id of targets) {
        const t = performance.now();
        const d = await manager.gql(`mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id });
        const sagaId = d.data?.deleteCustomer?.id as string;
        if (!sagaId) throw new Error(`deleteCustomer: ${JSON.stringify(d.errors)}`);
        let status = 'RUNNING';
        while (performance.now() - t < 60_000) {
          const s = await manager.gql(`query($id: ID!) { saga(id: $id) { status } }`, { id: sagaId });
          status = s.data?.saga?.status ?? 'RUNNING';
          if (status !== 'RUNNING') break;
          await sleep(20);
        }
        outcomes[status] = (outcomes[status] ?? 0) + 1;
        if (status === 'COMPLETED') times.push(performance.now() - t);
      }
      results.saga = { ...dist(times), outcomes };
      console.log(`sagas: ${JSON.stringify(results.saga)}`);
    }

    // ------------------------------------------------------------------ subscriptions
    if (SCENARIOS.includes('subscriptions')) results.subscriptions = await subscriptions(stack, admin, manager, reps[0]!, eventually);

    // ------------------------------------------------------------------ report
    const cpu = cpus();
    const machine = {
      nproc: Number(execSync('nproc').toString().trim()) || cpu.length,
      cpu: cpu[0]?.model ?? 'unknown',
      node: process.version,
      loadavgBefore: loadBefore,
      loadavgAtEnd: uptime(),
    };
    const run = {
      date: started.toISOString(),
      mode: `${stack.bus.kind === 'kafka' ? 'Kafka' : stack.bus.kind === 'postgres' ? 'Postgres bus' : 'in-process bus'} + Postgres + ${stack.config.REDIS_URL ? 'Redis' : 'memory cache'}`,
      stack:
        STACK === 'multi'
          ? `gateway (${stack.config.GATEWAY_WORKERS} worker process(es)) and each subgraph in a process of its own`
          : 'whole platform (gateway + 5 subgraphs) in one Node process',
      settings: {
        STACK,
        GATEWAY_WORKERS: stack.config.GATEWAY_WORKERS,
        INBOUND_DEDUPE: stack.config.INBOUND_DEDUPE,
        ROUNDS,
        DURATION,
        WARMUP,
        JIT_WARMUP,
        CONNECTIONS,
        SEED_CUSTOMERS,
        REPS,
        MANAGERS,
        SAGAS,
        SUB_N,
        SUB_EVENTS,
        NODE_ENV: 'production',
        RATE_LIMIT_ENABLED: false,
        LOG_LEVEL,
        OUTBOX_POLL_MS: 500,
      },
      machine,
      seed: { ...seeded, seconds: Number(seedSeconds.toFixed(1)), firstPage: sanity, consistency: consistency.counts },
      ...results,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    if (process.env.NO_REPORT !== '1') {
      writeFileSync(join(RESULTS_DIR, 'crm.json'), `${JSON.stringify(run, null, 2)}\n`);
      // A hand-written "## Where the time goes" section (profile notes) survives a re-run.
      const mdPath = join(RESULTS_DIR, 'crm.md');
      let notes = '';
      try {
        notes = /\n## Where the time goes[\s\S]*$/.exec(readFileSync(mdPath, 'utf8'))?.[0] ?? '';
      } catch {
        notes = '';
      }
      writeFileSync(mdPath, render(run) + notes);
      console.log(`→ ${join(RESULTS_DIR, 'crm.md')}`);
    }
  } finally {
    await stack.stop();
    await deleteTopics(stack).catch((err) => console.error('could not delete the Kafka topics', err));
  }
}

async function subscriptions(stack: BenchStack, admin: TestUser, manager: TestUser, sales: TestUser, eventually: typeof import('@crm/testing').eventually) {
  const { createClient } = await import('graphql-ws');
  const { default: WebSocket } = await import('ws');
  const QUERY = 'subscription { approvalStatusChanged { id status customer { name } requester { name } } }';
  const arrivals: Map<string, number>[] = [];
  const clients = [];
  try {
    for (let i = 0; i < SUB_N; i++) {
      const got = new Map<string, number>();
      arrivals.push(got);
      const client = createClient({
        url: stack.gatewayUrl.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams: { authorization: `Bearer ${(i % 2 ? admin : manager).token}` },
      });
      clients.push(client);
      client.subscribe<{ approvalStatusChanged: { id: string } }>(
        { query: QUERY },
        {
          next: (r) => {
            const id = r.data?.approvalStatusChanged.id;
            if (id && !got.has(id)) got.set(id, performance.now());
          },
          error: (e) => console.error('subscriber error', e),
          complete: () => {},
        },
      );
    }
    // NODE_ENV=production turns the gateway's live-stats endpoint off (it follows introspection), so
    // "registered" is observed instead: warm-up events until every subscriber has received one.
    const c = await sales.gql(`mutation { createCustomer(input: { name: "Subscription Co" }) { id } }`);
    const customerId = c.data.createCustomer.id as string;
    const request = (title: string) => sales.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title } });
    const warmIds: string[] = [];
    await eventually(
      async () => {
        const id = (await request('warm-up')).data?.requestApproval?.id as string | undefined;
        if (id) warmIds.push(id);
        await sleep(1000);
        return arrivals.every((a) => warmIds.some((w) => a.has(w)));
      },
      { timeoutMs: 90_000, intervalMs: 100 },
    );
    const last: number[] = [];
    const median: number[] = [];
    for (let e = 0; e < SUB_EVENTS + 1; e++) {
      const r = await request(`bench ${e}`);
      const committed = performance.now();
      const id = r.data?.requestApproval?.id as string | undefined;
      if (!id) throw new Error(`requestApproval failed: ${JSON.stringify(r.errors)}`);
      await eventually(async () => arrivals.every((a) => a.has(id)), { timeoutMs: 120_000, intervalMs: 20 });
      const d = dist(arrivals.map((a) => a.get(id)! - committed));
      if (e === 0) continue; // warms the entity query's plan
      last.push(d.max);
      median.push(d.p50);
      await sleep(200);
    }
    const out = { subscribers: SUB_N, events: last.length, lastClient: dist(last), medianClient: dist(median) };
    console.log(`subscriptions: ${JSON.stringify(out)}`);
    return out;
  } finally {
    await Promise.all(clients.map(async (c) => c.dispose()));
  }
}

/** The bench's own Kafka topics (namespace t<id>.) — startTestStack leaves them, tests too. */
async function deleteTopics(stack: BenchStack) {
  const ns = stack.config.KAFKA_NAMESPACE;
  if (stack.bus.kind !== 'kafka' || !/^t[0-9a-f]{8}\.$/.test(ns)) return;
  const { KafkaBus } = await import('@crm/events');
  const admin = new KafkaBus(stack.config, 'crm-bench-cleanup').admin();
  try {
    await admin.deleteTopics((await admin.listTopics()).filter((t) => t.startsWith(ns)));
    await admin.deleteGroups((await admin.listGroups()).filter((g) => g.startsWith(ns))).catch(() => undefined);
  } finally {
    await admin.close();
  }
}

interface Run {
  date: string;
  mode: string;
  stack: string;
  settings: Record<string, unknown>;
  machine: { nproc: number; cpu: string; node: string; loadavgBefore: number[]; loadavgAtEnd: number[] };
  seed: { customers: number; meetings: number; tasks: number; approvals: number; seconds: number };
  loads?: Record<string, Load & { rounds?: Load[] }>;
  projectionCatchUp?: { seconds: number; afterLastWrite?: number; consistent: boolean; rounds?: { handled: Record<string, { events: number; seconds: number }> }[] };
  backlog?: {
    events: number;
    publishSeconds: number;
    perConsumer: Record<string, { events: number; seconds: number; eventsPerSecond: number; workingSeconds?: number; workingEventsPerSecond?: number }>;
  };
  saga?: Dist & { outcomes: Record<string, number> };
  subscriptions?: { subscribers: number; events: number; lastClient: Dist; medianClient: Dist };
}

function render(r: Run): string {
  const label: Record<string, string> = {
    login: '`login` (SALES reps, rotating)',
    customers: '`customers(first: 50)` + rep, meetings, tasks, approvals (MANAGER), one fixed query',
    'customers-varied': 'the same list, varied: pages 1–4 by cursor and 5 search terms (MANAGERs)',
    'customers-varied@1': 'varied list, **1 connection**',
    'login+list:login': '`login` at 5 connections **while** the varied list runs at 20',
    'login+list:list': 'varied list at 20 connections **while** login runs at 5',
    dashboard: 'dashboard: 4 reports in one operation (MANAGER)',
    createCustomer: '`createCustomer` (SALES reps, rotating)',
    'customers@1': 'fixed customer list, **1 connection**',
    'dashboard@1': 'dashboard, **1 connection**',
  };
  const verdict = (name: string, l: Load) => {
    const t = TARGETS[name]!;
    const parts: string[] = [];
    if (Number.isFinite(t.target)) parts.push(`target ${t.target} ms: ${l.latency.p99 <= t.target ? 'met' : 'not met'}`);
    if (t.goal) parts.push(`goal p99 < ${t.goal} ms: ${l.latency.p99 < t.goal ? 'met' : '**not met**'}`);
    return parts.join('; ') || '–';
  };
  const out = [
    '# Benchmark 2: the CRM through the gateway (real services)',
    '',
    `${r.date} · ${r.mode} · ${r.stack} · autocannon in a child process`,
    `Machine: ${r.machine.nproc} CPUs (${r.machine.cpu}), Node ${r.machine.node}; load average before the run ${r.machine.loadavgBefore.join(' / ')}, at the end ${r.machine.loadavgAtEnd.join(' / ')} (shared machine: Postgres, Kafka, Redis and other work on the same 2 cores).`,
    `Settings: NODE_ENV=production, RATE_LIMIT_ENABLED=false, INBOUND_DEDUPE=${r.settings.INBOUND_DEDUPE}, LOG_LEVEL=${r.settings.LOG_LEVEL}, ${r.settings.CONNECTIONS} connections, ${r.settings.WARMUP} s warm-up + ${r.settings.DURATION} s measured per row${r.settings.JIT_WARMUP ? `, after one unmeasured ${Number(r.settings.JIT_WARMUP)} s JIT warm-up of every read scenario's requests mixed` : ''}.`,
    `Data: ${r.seed.customers} customers over ${r.settings.REPS} SALES reps, ${r.seed.meetings} meetings, ${r.seed.tasks} tasks, ${r.seed.approvals} approval requests (bulk SQL, ${r.seed.seconds} s; see below).`,
    '',
    `Figures are medians over ${r.settings.ROUNDS} rounds (each round runs every row once, in this order); errors are totals; the p99 of each round is in the last column.`,
    '',
    '| scenario | conns | req/s | p50 | p99 | max | CPU ms / request ¹ | errors | non-2xx | GraphQL errors | targets (p99) | p99 per round |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, l] of Object.entries(r.loads ?? {})) {
    out.push(
      `| ${label[name] ?? name} | ${l.connections ?? r.settings.CONNECTIONS} | ${l.rps.toFixed(0)} | ${ms(l.latency.p50)} | ${ms(l.latency.p99)} | ${ms(l.latency.max)} | ${l.cpuMsPerRequest ?? '–'} | ${l.errors + l.timeouts} | ${l.non2xx} | ${l.gqlErrors} | ${verdict(name, l)} | ${(l.rounds ?? []).map((x) => x.latency.p99).join(' / ')} |`,
    );
  }
  out.push(
    '',
    "¹ CPU time (user + system) of the platform's own processes — the one process, or the gateway and the five subgraph processes — per request sent (warm-up included), from /proc/<pid>/stat; Postgres, Kafka and Redis not included. Far less distorted by other work on a shared machine than latencies are.",
    '',
  );
  if (r.saga)
    out.push(
      `**Saga completion** (deleteCustomer → \`saga(id).status\` COMPLETED, polled every 20 ms, ${r.saga.n} sagas one at a time, each customer with a meeting and a task): p50 ${ms(r.saga.p50)}, p99 ${ms(r.saga.p99)}, max ${ms(r.saga.max)}; outcomes ${JSON.stringify(r.saga.outcomes)}.`,
      '',
    );
  if (r.subscriptions) {
    const s = r.subscriptions;
    out.push(
      `**Event to subscriber** (as bench/subscriptions.ts, ${s.subscribers} graphql-ws subscribers, ${s.events} \`approvalStatusChanged\` events, from the \`requestApproval\` response): last client p50 ${ms(s.lastClient.p50)}, max ${ms(s.lastClient.max)}; median client p50 ${ms(s.medianClient.p50)}. (1000 subscribers: see bench/results/subscriptions.md.)`,
      '',
    );
  }
  if (r.projectionCatchUp) {
    out.push(
      `**Projections after the createCustomer load**: customer_refs (sales-activity, opportunity) and analytics customer_facts matched the customer table ${r.projectionCatchUp.seconds} s (median over rounds; the check polls every 0.5 s) after each ${WARMUP + DURATION} s createCustomer load ended${r.projectionCatchUp.afterLastWrite !== undefined ? `, ${r.projectionCatchUp.afterLastWrite} s after its last write committed (max customers.created_at; the check that passed started then)` : ''} (consistent: ${r.projectionCatchUp.consistent}).`,
      '',
    );
    const last = r.projectionCatchUp.rounds?.[r.projectionCatchUp.rounds.length - 1]?.handled;
    if (last)
      out.push(
        `Events handled per consuming subgraph from the start of the last round's load until consistent (paced by the load): ${Object.entries(last)
          .map(([k, v]) => `${k} ${v.events} in ${v.seconds} s`)
          .join(', ')}.`,
        '',
      );
  }
  if (r.backlog) {
    out.push(
      `**Consumer capacity** (a backlog of ${r.backlog.events} customer.updated events published at once in ${r.backlog.publishSeconds} s; time until each consumer had all of them in its inbox):`,
      '',
      '| consumer | seconds from the start of publishing | events/s | seconds from its first to its last batch (inbox handled_at) | events/s while working |',
      '|---|---|---|---|---|',
      ...Object.entries(r.backlog.perConsumer).map(([k, v]) => `| ${k} | ${v.seconds} | ${v.eventsPerSecond} | ${v.workingSeconds ?? '–'} | ${v.workingEventsPerSecond ?? '–'} |`),
      '',
      'The first figure includes the publishing (the consumers start while it runs); the second is the rate while the consumer had work, paced by the publisher when that is slower.',
      '',
    );
  }
  out.push(
    'Per-row load averages before each scenario are in crm.json. Run: `npm run bench:crm` (STACK=multi|single, GATEWAY_WORKERS, INBOUND_DEDUPE, DURATION, WARMUP, JIT_WARMUP, CONNECTIONS, SEED_CUSTOMERS, REPS, MANAGERS, SAGAS, SUB_N, SUB_EVENTS, ROUNDS, SINGLE=0, SCENARIOS env vars).',
    '',
  );
  return out.join('\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
