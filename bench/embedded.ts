/**
 * The embedded default as a new user meets it: `npm start`'s entry (apps/platform/src/main.ts) with
 * no POSTGRES_URL, KAFKA_BROKERS or REDIS_URL, in a fresh DATA_DIR.
 *
 *   npx tsx bench/embedded.ts [checkout]     # checkout: the tree to measure (default: this one)
 *
 * For each mode (STACK_PROCESSES=multi and single), REPS times: a cold start (empty DATA_DIR:
 * initdb / database creation, migrations) and a warm one (same DATA_DIR again), each timed from
 * spawn to the gateway's /ready answering 200; after the warm start, the acceptance flow (register,
 * 10 customers, a customer-deletion saga to COMPLETED, a live notificationAdded subscription that
 * receives its notification) and then the memory of every process of the platform — the launcher's
 * process tree plus, when there is one, the embedded Postgres server's (its own process group) —
 * from /proc/<pid>/smaps_rollup: PSS (shared pages counted once across processes) and RSS.
 * Medians are written to bench/results/embedded-<LABEL>.json (LABEL env, default "run").
 * The same script measures any checkout (before: PGlite; after: embedded Postgres).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { num, uptime } from './measure';

const CHECKOUT = resolve(process.argv[2] ?? join(__dirname, '..'));
const REPS = num('REPS', 3);
const LABEL = process.env.LABEL ?? 'run';
const OUT = join(__dirname, 'results', `embedded-${LABEL}.json`);
const ADMIN = { email: 'bench-admin@example.com', password: 'bench-Admin-pw-7q4k2z' };

const freePort = () =>
  new Promise<number>((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });

interface Run {
  proc: ChildProcess;
  url: string;
  readyMs: number;
}

async function start(dataDir: string, mode: string, ports: number[]): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(POSTGRES_URL|KAFKA_BROKERS|REDIS_URL|NODE_OPTIONS)$/.test(k)) env[k] = v;
  Object.assign(env, {
    DATA_DIR: dataDir,
    STACK_PROCESSES: mode,
    LOG_LEVEL: 'warn',
    PORT: String(ports[0]),
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    AUTH_URL: `http://127.0.0.1:${ports[1]}/graphql`,
    CUSTOMER_URL: `http://127.0.0.1:${ports[2]}/graphql`,
    OPPORTUNITY_URL: `http://127.0.0.1:${ports[3]}/graphql`,
    SALES_ACTIVITY_URL: `http://127.0.0.1:${ports[4]}/graphql`,
    ANALYTICS_URL: `http://127.0.0.1:${ports[5]}/graphql`,
  });
  const t0 = performance.now();
  const proc = spawn(process.execPath, ['--import', 'tsx', join(CHECKOUT, 'apps/platform/src/main.ts')], { cwd: CHECKOUT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${ports[0]}`;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`platform exited: ${out.slice(-2000)}`);
    try {
      const r = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) break;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, url, readyMs: performance.now() - t0 };
}

async function stop(run: Run): Promise<void> {
  const exited = new Promise((r) => run.proc.once('exit', r));
  process.kill(-run.proc.pid!, 'SIGINT');
  await exited;
}

async function gql(url: string, query: string, variables: Record<string, unknown> = {}, token?: string) {
  const r = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await r.json()) as { data?: any; errors?: unknown };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** register, customers, a saga, a subscription. */
async function acceptanceFlow(url: string): Promise<void> {
  const email = `rep-${Date.now()}@example.com`;
  const reg = await gql(url, `mutation($input: RegisterInput!) { register(input: $input) { accessToken user { id } } }`, {
    input: { email, password: 'password-1234', name: 'Bench Rep' },
  });
  const token = reg.register.accessToken as string;
  const admin = (await gql(url, `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`, { e: ADMIN.email, p: ADMIN.password })).login
    .accessToken as string;
  const ws = createClient({ url: `${url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` } });
  const notified = new Promise<void>((res, rej) => {
    ws.subscribe({ query: 'subscription { notificationAdded { type } }' }, { next: () => res(), error: rej, complete: () => undefined });
  });
  const ids: string[] = [];
  for (let i = 0; i < 10; i++)
    ids.push((await gql(url, `mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, { input: { name: `Bench ${i}` } }, token)).createCustomer.id);
  await Promise.race([notified, new Promise((_, rej) => setTimeout(() => rej(new Error('no notification within 60 s')), 60_000))]);
  const saga = (await gql(url, `mutation($id: ID!) { deleteCustomer(id: $id) { id } }`, { id: ids[0] }, admin)).deleteCustomer.id as string;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const s = (await gql(url, `query($id: ID!) { saga(id: $id) { status } }`, { id: saga }, admin)).saga?.status;
    if (s === 'COMPLETED') break;
    if (Date.now() > deadline) throw new Error(`saga ${s} after 120 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await ws.dispose();
}

/** The launcher's process tree plus the embedded Postgres server's (own group), if any. */
function platformPids(root: number, dataDir: string): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone
    }
  }
  const tree = (pid: number): number[] => [pid, ...(children.get(pid) ?? []).flatMap(tree)];
  const pids = tree(root);
  const pg = postmaster(dataDir);
  if (pg && !pids.includes(pg)) pids.push(...tree(pg));
  return pids;
}

function postmaster(dataDir: string): number | undefined {
  const home = join(dataDir, 'postgres');
  const location = join(home, 'location');
  const data = existsSync(location) ? join(readFileSync(location, 'utf8').trim(), 'data') : join(home, 'data');
  try {
    return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

function memory(pids: number[]): { pssMb: number; rssMb: number; processes: number } {
  let pss = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      pss += Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
      rss += Number(/^Rss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return { pssMb: Math.round(pss / 1024), rssMb: Math.round(rss / 1024), processes: pids.length };
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main() {
  const results: Record<string, unknown> = { checkout: CHECKOUT, reps: REPS, loadBefore: uptime(), at: new Date().toISOString() };
  for (const mode of ['multi', 'single']) {
    const cold: number[] = [];
    const warm: number[] = [];
    const pss: number[] = [];
    const rss: number[] = [];
    let processes = 0;
    for (let i = 0; i < REPS; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'crm-bench-embedded-'));
      chmodSync(dataDir, 0o755); // like a checkout: as root, the server's user passes through (no relocation)
      const ports = await Promise.all(Array.from({ length: 6 }, freePort));
      try {
        let run = await start(dataDir, mode, ports);
        cold.push(run.readyMs);
        await stop(run);
        run = await start(dataDir, mode, ports);
        warm.push(run.readyMs);
        await acceptanceFlow(run.url);
        const m = memory(platformPids(run.proc.pid!, dataDir));
        pss.push(m.pssMb);
        rss.push(m.rssMb);
        processes = m.processes;
        console.log(
          `${mode} #${i + 1}: cold ${(cold.at(-1)! / 1000).toFixed(1)} s, warm ${(warm.at(-1)! / 1000).toFixed(1)} s, after the flow PSS ${m.pssMb} MB, RSS ${m.rssMb} MB (${m.processes} processes), load ${uptime().join(' ')}`,
        );
        await stop(run);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
    results[mode] = {
      coldReadyS: +(median(cold) / 1000).toFixed(1),
      warmReadyS: +(median(warm) / 1000).toFixed(1),
      pssMb: median(pss),
      rssMb: median(rss),
      processes,
      runs: { cold: cold.map((v) => +(v / 1000).toFixed(1)), warm: warm.map((v) => +(v / 1000).toFixed(1)), pss, rss },
    };
  }
  results.loadAfter = uptime();
  writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written ${OUT}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
