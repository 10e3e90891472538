/**
 * Live subscription delivery latency: N graphql-ws subscribers on one gateway, several events, and
 * for each event the time from "committed" (the mutation's response, i.e. after the transaction
 * that wrote the state change and its outbox row) to each subscriber's receipt, especially the last.
 *
 *   npx tsx bench/subscriptions.ts                 # embedded (PGlite, in-process bus)
 *   POSTGRES_URL=… KAFKA_BROKERS=… REDIS_URL=… npx tsx bench/subscriptions.ts   # real services
 *   N=1000 EVENTS=10 npx tsx bench/subscriptions.ts
 *   N=10000 PER_CONNECTION=10 EVENTS=5 npx tsx bench/subscriptions.ts   # 10,000 subscriptions on 1,000 sockets
 *
 * Writes bench/results/subscriptions.md and .json. Not part of `npm test`.
 * Clients, gateway and subgraphs share this one process (and the machine's cores).
 */
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { eventually } from '@crm/kit';
import { startTestStack } from '@crm/platform';

const N = Number(process.env.N ?? 1000);
const EVENTS = Number(process.env.EVENTS ?? 10);
const BATCH = 100;
/** Subscriptions per graphql-ws connection (the gateway allows SUBSCRIPTIONS_PER_CONNECTION): one process holds both ends of every socket, so 10,000 subscribers need PER_CONNECTION > 1 under a 20,000 open-files limit. */
const PER_CONNECTION = Number(process.env.PER_CONNECTION ?? 1);
const QUERY = 'subscription { approvalStatusChanged { id status customer { name } requester { name } } }';

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] ?? NaN, n: s.length };
};
const ms = (v: number) => `${v.toFixed(1)} ms`;

async function main() {
  const started = new Date();
  console.log(`starting the stack (${process.env.KAFKA_BROKERS ? 'real services' : 'embedded'})…`);
  const stack = await startTestStack({ env: { LOG_LEVEL: 'silent' } });
  const mode = stack.bus.kind === 'kafka' ? 'Kafka + Postgres' + (stack.config.REDIS_URL ? ' + Redis' : '') : 'embedded (PGlite, in-process bus)';
  const stats = async () => (await (await fetch(stack.gatewayUrl.replace(/\/graphql$/, '/graphql/live-stats'))).json()) as { subscriptions: number; groups: number };
  const clients: Client[] = [];
  try {
    const sales = await stack.user('SALES');
    const manager = await stack.user('MANAGER');
    const admin = await stack.admin();
    // arrival times per request id, per client
    const arrivals: Map<string, number>[] = [];
    for (let b = 0; b < N; b += BATCH) {
      for (let i = b; i < Math.min(N, b + BATCH); i++) {
        const got = new Map<string, number>();
        arrivals.push(got);
        const connection = Math.floor(i / PER_CONNECTION);
        if (i % PER_CONNECTION === 0) {
          clients.push(createClient({
            url: stack.gatewayUrl.replace(/^http/, 'ws'),
            webSocketImpl: WebSocket,
            retryAttempts: 0,
            connectionParams: { authorization: `Bearer ${(connection % 2 ? admin : manager).token}` },
          }));
        }
        clients[connection]!.subscribe<{ approvalStatusChanged: { id: string } }>({ query: QUERY }, {
          next: (r) => {
            const id = r.data?.approvalStatusChanged.id;
            if (id && !got.has(id)) got.set(id, performance.now());
          },
          error: (e) => console.error('subscriber error', e),
          complete: () => {},
        });
      }
      await eventually(async () => (await stats()).subscriptions >= Math.min(N, b + BATCH), { timeoutMs: 60_000 });
    }
    console.log(`${N} subscribers registered (${(await stats()).groups} resolution groups)`);

    const customer = await sales.gql(`mutation { createCustomer(input: { name: "Bench Co" }) { id } }`);
    const customerId = customer.data.createCustomer.id as string;
    const request = (title: string) => sales.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title } });
    await eventually(async () => (await request('warm-up')).data?.requestApproval?.id, { timeoutMs: 30_000, intervalMs: 200 });

    const rows: { event: number; first: number; p50: number; p99: number; last: number }[] = [];
    for (let e = 0; e < EVENTS + 1; e++) {
      const r = await request(`bench ${e}`);
      const committed = performance.now();
      const id = r.data?.requestApproval?.id as string | undefined;
      if (!id) throw new Error(`requestApproval failed: ${JSON.stringify(r.errors)}`);
      await eventually(async () => arrivals.every((a) => a.has(id)), { timeoutMs: 120_000, intervalMs: 20 });
      const lat = summary(arrivals.map((a) => a.get(id)! - committed));
      const first = Math.min(...arrivals.map((a) => a.get(id)! - committed));
      if (e === 0) continue; // the first event after the warm-up also warms the entity query's plan
      rows.push({ event: e, first, p50: lat.p50, p99: lat.p99, last: lat.max });
      console.log(`event ${e}: first ${ms(first)}, p50 ${ms(lat.p50)}, p99 ${ms(lat.p99)}, last ${ms(lat.max)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const last = summary(rows.map((r) => r.last));
    const perClientP50 = summary(rows.map((r) => r.p50));
    const cpu = cpus();
    const machine = {
      nproc: Number(execSync('nproc').toString().trim()) || cpu.length,
      cpu: cpu[0]?.model ?? 'unknown',
      node: process.version,
      loadavgAtEnd: loadavg().map((l) => Number(l.toFixed(2))),
      // The whole process: N clients, the gateway and five subgraphs.
      rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
      heapUsedMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
    };
    const result: Run = {
      date: started.toISOString(),
      mode,
      subscribers: N,
      connections: clients.length,
      events: rows.length,
      outboxPollMs: stack.config.OUTBOX_POLL_MS,
      machine,
      lastClient: last,
      medianClient: perClientP50,
      perEvent: rows,
    };
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    // One run per mode is kept (embedded, real services), so both appear side by side.
    const jsonPath = join(dir, 'subscriptions.json');
    let runs: Record<string, typeof result> = {};
    try {
      runs = (JSON.parse(readFileSync(jsonPath, 'utf8')) as { runs?: Record<string, typeof result> }).runs ?? {};
    } catch {
      runs = {};
    }
    runs[`${stack.bus.kind}-${N}`] = result; // one run per mode and subscriber count
    writeFileSync(jsonPath, `${JSON.stringify({ runs }, null, 2)}\n`);
    writeFileSync(join(dir, 'subscriptions.md'), render(Object.values(runs)));
    console.log(`last client: p50 ${ms(last.p50)}, p99 ${ms(last.p99)}, max ${ms(last.max)} → bench/results/subscriptions.md`);
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await stack.stop();
  }
}

type Run = {
  date: string; mode: string; subscribers: number; connections?: number; events: number; outboxPollMs: number;
  machine: { nproc: number; cpu: string; node: string; loadavgAtEnd: number[]; rssMB?: number; heapUsedMB?: number };
  lastClient: ReturnType<typeof summary>; medianClient: ReturnType<typeof summary>;
  perEvent: { event: number; first: number; p50: number; p99: number; last: number }[];
};

function render(runs: Run[]): string {
  const out = [
    '# Live subscriptions: delivery latency',
    '',
    'N graphql-ws subscribers on one gateway (half MANAGER, half ADMIN: 2 resolution groups), one `approvalStatusChanged`',
    'event at a time. Latency = from the `requestApproval` response (the transaction with the outbox row committed) to a',
    'client receiving the event, its selection resolved through the opportunity, customer and auth subgraphs. Includes',
    'the outbox relay poll (OUTBOX_POLL_MS). Clients, gateway and all five subgraphs run in one process.',
    '',
  ];
  for (const r of runs) {
    out.push(
      `## ${r.mode}, ${r.subscribers} subscribers`,
      '',
      `${r.date} · ${r.subscribers} subscribers${r.connections && r.connections !== r.subscribers ? ` on ${r.connections} connections` : ''} · ${r.events} events · OUTBOX_POLL_MS ${r.outboxPollMs}`,
      `Machine: ${r.machine.nproc} CPUs (${r.machine.cpu}), Node ${r.machine.node}, load average at the end ${r.machine.loadavgAtEnd.join(' / ')} (shared machine).`
        + (r.machine.rssMB ? ` Memory at the end (one process: clients, gateway, subgraphs): RSS ${r.machine.rssMB} MB, heap ${r.machine.heapUsedMB} MB.` : ''),
      '',
      '| over events | p50 | p99 | max |',
      '|---|---|---|---|',
      `| last client received | ${ms(r.lastClient.p50)} | ${ms(r.lastClient.p99)} | ${ms(r.lastClient.max)} |`,
      `| median client received | ${ms(r.medianClient.p50)} | ${ms(r.medianClient.p99)} | ${ms(r.medianClient.max)} |`,
      '',
      '| event | first client | p50 client | p99 client | last client |',
      '|---|---|---|---|---|',
      ...r.perEvent.map((e) => `| ${e.event} | ${ms(e.first)} | ${ms(e.p50)} | ${ms(e.p99)} | ${ms(e.last)} |`),
      '',
    );
  }
  out.push('Run: `npx tsx bench/subscriptions.ts` (embedded) or with POSTGRES_URL, KAFKA_BROKERS, REDIS_URL set (real services); N, EVENTS and PER_CONNECTION (subscriptions per connection) env vars.', '');
  return out.join('\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
