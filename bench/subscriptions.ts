/**
 * Live subscription delivery latency: N graphql-ws subscribers on one gateway, several events, and
 * for each event the time from "committed" (the mutation's response, i.e. after the transaction
 * that wrote the state change and its outbox row) to each subscriber's receipt, especially the last.
 *
 *   npx tsx bench/subscriptions.ts                       # real Postgres, Kafka, Redis (defaults below), a process per service
 *   EMBEDDED=1 npx tsx bench/subscriptions.ts            # the embedded Postgres and the in-process bus (bridged over IPC)
 *   STACK=single npx tsx bench/subscriptions.ts          # gateway and subgraphs on this process's event loop
 *   N=1000 EVENTS=10 npx tsx bench/subscriptions.ts
 *   N=10000 PER_CONNECTION=1 EVENTS=10 npx tsx bench/subscriptions.ts   # 10,000 sockets (PER_CONNECTION=10: 1,000)
 *   CPU_PROF=/tmp/subs-prof npx tsx bench/subscriptions.ts   # --cpu-prof of every service process (STACK=multi); no report
 *     (it prints the measured events' window: node bench/crm/profile-top.mjs <gateway's .cpuprofile> 25 <from> <to>)
 *   IDLE_CPU=1 npx tsx bench/subscriptions.ts            # first 10 s idle: CPU ms per second by process with no events (the idle share of the per-event figures)
 *   TRACE_GC=1 npx tsx bench/subscriptions.ts            # --trace-gc in every service process: "[pid:…] … ms: Scavenge / Mark-Compact …" lines
 *                                                        #   between the "event N" lines show which pauses fell on which event
 *
 * The platform runs as `npm start` does (STACK=multi, the default: the gateway and each subgraph in a
 * process of its own, startProcessTestStack; GATEWAY_WORKERS=1, so the gateway is one process) with
 * throwaway databases / topics, NODE_ENV=production (random secrets), the per-user / per-IP socket
 * caps raised to N (every subscriber is one of two users on 127.0.0.1), rate limits off.
 * The subscribers run in a child process (bench/subscriptions/clients.mjs): half MANAGER, half
 * ADMIN, so 2 resolution groups. Times on both sides are performance.timeOrigin + performance.now().
 *
 * Memory: the gateway process's RSS (/proc/<pid>/status VmRSS) before the subscribers connect, once
 * they are all registered (steady), and its peak (VmHWM) at the end; budget = (steady − before) per
 * 1,000 subscribers. CPU: the gateway process's user + system time over the measured events.
 *
 * Writes bench/results/subscriptions.md and .json (one run kept per stack, bus, N and sockets).
 * Not part of `npm test`. Run it under `flock /tmp/quiet.lock` on the shared machine.
 */
import { execSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, homedir } from 'node:os';
import { join } from 'node:path';
import { cpuMsOrZero, dist, ms, num, sleep, uptime, type Dist } from './measure';

const EMBEDDED = process.env.EMBEDDED === '1';
if (!EMBEDDED) {
  for (const [k, v] of Object.entries({ POSTGRES_URL: 'postgresql://postgres@127.0.0.1:5432/postgres', KAFKA_BROKERS: '127.0.0.1:9092', REDIS_URL: 'redis://127.0.0.1:6379' })) {
    if (!process.env[k]) process.env[k] = v;
  }
} else {
  for (const k of ['POSTGRES_URL', 'KAFKA_BROKERS', 'REDIS_URL']) delete process.env[k];
}
process.env.NODE_ENV = 'production';

const N = num('N', 1000);
const EVENTS = num('EVENTS', 10);
const PER_CONNECTION = num('PER_CONNECTION', 1);
const BATCH = num('BATCH', 200);
const OUTBOX_POLL_MS = num('OUTBOX_POLL_MS', 500);
const STACK = process.env.STACK ?? 'multi';
/** The subscribers' client: 'ws' (graphql-transport-ws over ws, lean) or 'graphql-ws' (its createClient). */
const CLIENT = process.env.CLIENT ?? 'ws';
if (CLIENT !== 'ws' && CLIENT !== 'graphql-ws') throw new Error('CLIENT must be ws or graphql-ws');
if (STACK !== 'multi' && STACK !== 'single') throw new Error('STACK must be multi or single');
const QUERY = 'subscription { approvalStatusChanged { id status customer { name } requester { name } } }';

const now = () => performance.timeOrigin + performance.now();

/** VmRSS / VmHWM of a process, MB. */
function memoryOf(pid: number): { rssMB: number; peakMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMB: Math.round(kb('VmRSS') / 1024), peakMB: Math.round(kb('VmHWM') / 1024) };
}

/**
 * CPU time so far (ms, /proc) of every process an event touches: each service, the subscriber process,
 * the Kafka broker (scripts/kafka.sh's pid file, when it runs here) and all Postgres processes.
 */
function processCpu(pids: Record<string, number>, clientsPid: number): Record<string, number> {
  const of = cpuMsOrZero;
  const out: Record<string, number> = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, of(pid)]));
  out.clients = of(clientsPid);
  try {
    const kafkaPid = Number(readFileSync(join(process.env.KAFKA_DATA_DIR ?? join(homedir(), '.cache', 'crm-kafka', 'data'), 'kafka.pid'), 'utf8').trim());
    if (kafkaPid) out.kafka = of(kafkaPid);
  } catch {
    // no local broker
  }
  const postgres = execSync('pgrep -x postgres || true').toString().split('\n').filter(Boolean).map(Number);
  out.postgres = postgres.reduce((sum, pid) => sum + of(pid), 0);
  return out;
}

/** The subscriber process: request/response over its IPC channel, one request at a time. */
function startClients(): { child: ChildProcess; ask<T>(message: Record<string, unknown>, reply: string): Promise<T> } {
  const child = fork(join(__dirname, 'subscriptions', 'clients.mjs'), [], { execArgv: [], env: { ...process.env, NODE_OPTIONS: '' }, stdio: 'inherit' });
  const ask = <T>(message: Record<string, unknown>, reply: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: { type: string; message?: string }) => {
        if (m.type !== reply && m.type !== 'error') return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`subscriber process: ${m.message}`));
        else resolve(m as T);
      };
      const onExit = (code: number | null) => reject(new Error(`subscriber process exited (${code})`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(message);
    });
  return { child, ask };
}

async function main() {
  const started = new Date();
  const loadBefore = uptime();
  const { startTestStack, startProcessTestStack } = await import('@crm/platform');
  const { generateKeySet } = await import('@crm/runtime');
  const { eventually } = await import('@crm/testing');
  const { KafkaBus } = await import('@crm/events');
  console.log(`load average before: ${loadBefore.join(' / ')}; starting the stack (${EMBEDDED ? 'embedded' : 'real services'}, STACK=${STACK})…`);
  const keys = generateKeySet();
  const env = {
    NODE_ENV: 'production',
    // production starts only with the signing keys: the launcher hands each process its own; one process (STACK=single) holds them all
    ...keys,
    SERVICE_SIGNING_KEY: keys.CUSTOMER_SERVICE_KEY!,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    RATE_LIMIT_ENABLED: 'false',
    OUTBOX_POLL_MS: String(OUTBOX_POLL_MS),
    ACCESS_TOKEN_TTL_SECONDS: '7200',
    DATABASE_POOL_MAX: '10',
    SUBSCRIPTION_CONNECTIONS_PER_USER: String(N),
    SUBSCRIPTION_CONNECTIONS_PER_IP: String(N),
    SUBSCRIPTIONS_PER_CONNECTION: String(Math.max(20, PER_CONNECTION)),
  };
  const execArgv = process.env.CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF}`] : process.env.TRACE_GC ? ['--trace-gc'] : [];
  const stack = STACK === 'multi' ? await startProcessTestStack({ env, execArgv }) : await startTestStack({ env });
  const gatewayPid = 'pids' in stack ? stack.pids.gateway! : process.pid;
  const mode = stack.bus.kind === 'kafka' ? 'Kafka + Postgres' + (stack.config.REDIS_URL ? ' + Redis' : '') : 'embedded (embedded Postgres, in-process bus)';
  console.log(`stack up (${mode}); gateway pid ${gatewayPid}${'pids' in stack ? `; pids ${JSON.stringify(stack.pids)}` : ''}`);
  const clients = startClients();
  try {
    const sales = await stack.user('SALES');
    const manager = await stack.user('MANAGER');
    const admin = await stack.admin();
    const customer = await sales.gql(`mutation { createCustomer(input: { name: "Bench Co" }) { id } }`);
    const customerId = customer.data.createCustomer.id as string;
    const request = (title: string) => sales.gql(`mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { id } }`, { input: { customerId, title } });
    await eventually(async () => (await request('warm-up')).data?.requestApproval?.id, { timeoutMs: 30_000, intervalMs: 200 });
    await sleep(1000);
    const before = memoryOf(gatewayPid);

    // The one-clock check: how far this process's clock runs from the subscriber process's (plus one IPC hop).
    const clock = await clients.ask<{ t: number; here: number }>({ type: 'clock', t: now() }, 'clock');
    const clockSkewBoundMs = clock.here - clock.t;

    const t0 = performance.now();
    const { connections } = await clients.ask<{ connections: number }>(
      {
        type: 'open',
        url: stack.gatewayUrl.replace(/^http/, 'ws'),
        tokens: [manager.token, admin.token],
        n: N,
        perConnection: PER_CONNECTION,
        query: QUERY,
        batch: BATCH,
        client: CLIENT,
      },
      'opened',
    );
    console.log(`${connections} connections acknowledged in ${((performance.now() - t0) / 1000).toFixed(1)} s; waiting until all ${N} subscribers receive a warm-up event…`);
    // NODE_ENV=production turns the live-stats endpoint off: "registered" = every subscriber received a warm-up event.
    const warm: string[] = [];
    await eventually(
      async () => {
        const id = (await request('warm-up')).data?.requestApproval?.id as string | undefined;
        if (id) warm.push(id);
        await sleep(1000);
        return (await clients.ask<{ all: boolean }>({ type: 'seen', ids: warm }, 'seen')).all;
      },
      { timeoutMs: 300_000, intervalMs: 100 },
    );
    await sleep(2000);
    if (process.env.IDLE_CPU) {
      // What each process burns with nothing happening (polls, heartbeats, token-state refreshes):
      // the share of "CPU ms per event" below that is not the event's.
      const from = process.hrtime.bigint() / 1000n;
      const a = processCpu('pids' in stack ? stack.pids : {}, clients.child.pid!);
      await sleep(10_000);
      const b = processCpu('pids' in stack ? stack.pids : {}, clients.child.pid!);
      const perSecond = Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Math.round((v - (a[k] ?? 0)) / 10)]));
      console.log(`idle CPU ms per second by process (10 s, window µs ${from} ${process.hrtime.bigint() / 1000n}): ${JSON.stringify(perSecond)}`);
    }
    const steady = memoryOf(gatewayPid);
    console.log(`all registered (${warm.length} warm-up events); gateway RSS ${before.rssMB} MB → ${steady.rssMB} MB`);

    const rows: { event: number; first: number; p50: number; p99: number; last: number }[] = [];
    let processesAtStart: Record<string, number> = {};
    let windowFromUs = 0n;
    for (let e = 0; e < EVENTS + 1; e++) {
      if (e === 1) {
        processesAtStart = processCpu('pids' in stack ? stack.pids : {}, clients.child.pid!);
        windowFromUs = process.hrtime.bigint() / 1000n;
      }
      const r = await request(`bench ${e}`);
      const committed = now();
      const id = r.data?.requestApproval?.id as string | undefined;
      if (!id) throw new Error(`requestApproval failed: ${JSON.stringify(r.errors)}`);
      const got = await clients.ask<{ times: (number | null)[]; missing: number }>({ type: 'collect', id, timeoutMs: 120_000 }, 'arrivals');
      if (got.missing > 0) throw new Error(`${got.missing} subscribers did not receive event ${e} within 120 s`);
      const lat = got.times.map((t) => t! - committed);
      const d = dist(lat);
      const first = Math.min(...lat);
      if (e > 0) {
        // the first event after the warm-up is not counted
        rows.push({ event: e, first, p50: d.p50, p99: d.p99, last: d.max });
        console.log(`event ${e}: first ${ms(first)}, p50 ${ms(d.p50)}, p99 ${ms(d.p99)}, last ${ms(d.max)}`);
      }
      await sleep(200);
    }
    // V8's CPU profiles count time on the same clock (CLOCK_MONOTONIC): bench/crm/profile-top.mjs <file> 25 <from> <to>
    console.log(`measured events' window (µs, CLOCK_MONOTONIC): ${windowFromUs} ${process.hrtime.bigint() / 1000n}`);
    const processesAtEnd = processCpu('pids' in stack ? stack.pids : {}, clients.child.pid!);
    const cpuMsPerEventByProcess = Object.fromEntries(Object.entries(processesAtEnd).map(([k, v]) => [k, Math.round((v - (processesAtStart[k] ?? 0)) / EVENTS)]));
    const gatewayCpuMsPerEvent = STACK === 'multi' ? cpuMsPerEventByProcess.gateway : undefined;
    const clientsCpuMsPerEvent = cpuMsPerEventByProcess.clients!;
    console.log(`CPU ms per event by process (whole window, idle time between events included): ${JSON.stringify(cpuMsPerEventByProcess)}`);
    const end = memoryOf(gatewayPid);
    const clientMemory = await clients.ask<{ rssMB: number }>({ type: 'memory' }, 'memory');
    const last = dist(rows.map((r) => r.last));
    const perClientP50 = dist(rows.map((r) => r.p50));
    const cpu = cpus();
    const result: Run = {
      date: started.toISOString(),
      mode,
      stack: STACK === 'multi' ? 'a process per service (as npm start), subscribers in a child process' : 'gateway and subgraphs in one process, subscribers in a child process',
      subscribers: N,
      connections,
      events: rows.length,
      outboxPollMs: stack.config.OUTBOX_POLL_MS,
      clock: 'performance.timeOrigin + performance.now() in both processes',
      clockSkewBoundMs: Number(clockSkewBoundMs.toFixed(2)),
      machine: {
        nproc: Number(execSync('nproc').toString().trim()) || cpu.length,
        cpu: cpu[0]?.model ?? 'unknown',
        node: process.version,
        loadavgBefore: loadBefore,
        loadavgAtEnd: uptime(),
      },
      gateway: {
        process: STACK === 'multi' ? 'gateway' : 'gateway + subgraphs',
        rssBeforeMB: before.rssMB,
        rssSteadyMB: steady.rssMB,
        rssEndMB: end.rssMB,
        rssPeakMB: end.peakMB,
        mbPer1000: Number((((steady.rssMB - before.rssMB) / N) * 1000).toFixed(1)),
        ...(gatewayCpuMsPerEvent !== undefined ? { cpuMsPerEvent: gatewayCpuMsPerEvent } : {}),
      },
      client: CLIENT === 'ws' ? 'graphql-transport-ws over ws (bench/subscriptions/clients.mjs)' : 'graphql-ws createClient',
      clientsRssMB: clientMemory.rssMB,
      clientsCpuMsPerEvent,
      cpuMsPerEventByProcess,
      lastClient: last,
      medianClient: perClientP50,
      perEvent: rows,
    };
    if (process.env.CPU_PROF || process.env.NO_REPORT === '1') {
      console.log(`not written to bench/results (CPU_PROF / NO_REPORT): ${JSON.stringify({ lastClient: last, medianClient: perClientP50, gateway: result.gateway })}`);
      return;
    }
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const jsonPath = join(dir, 'subscriptions.json');
    let runs: Record<string, Run> = {};
    try {
      runs = (JSON.parse(readFileSync(jsonPath, 'utf8')) as { runs?: Record<string, Run> }).runs ?? {};
    } catch {
      runs = {};
    }
    runs[`${STACK}-${stack.bus.kind}-${N}-${connections}-${CLIENT}`] = result;
    writeFileSync(jsonPath, `${JSON.stringify({ runs }, null, 2)}\n`);
    writeFileSync(join(dir, 'subscriptions.md'), render(runs));
    console.log(`last client: p50 ${ms(last.p50)}, p99 ${ms(last.p99)}, max ${ms(last.max)}; gateway RSS ${JSON.stringify(result.gateway)} → bench/results/subscriptions.md`);
  } finally {
    await clients.ask({ type: 'close' }, 'closed').catch(() => undefined);
    await stack.stop();
    if (stack.bus.kind === 'kafka' && /^t[0-9a-f]{8}\.$/.test(stack.config.KAFKA_NAMESPACE)) {
      const ns = stack.config.KAFKA_NAMESPACE;
      const kafkaAdmin = new KafkaBus(stack.config, 'subscriptions-bench-cleanup').admin();
      try {
        await kafkaAdmin.deleteTopics((await kafkaAdmin.listTopics()).filter((t) => t.startsWith(ns)));
        await kafkaAdmin.deleteGroups((await kafkaAdmin.listGroups()).filter((g) => g.startsWith(ns))).catch(() => undefined);
      } catch (err) {
        console.error('could not delete the Kafka topics', err);
      } finally {
        await kafkaAdmin.close();
      }
    }
  }
}

interface Run {
  date: string;
  mode: string;
  stack?: string;
  subscribers: number;
  connections?: number;
  events: number;
  outboxPollMs: number;
  clock?: string;
  clockSkewBoundMs?: number;
  machine: { nproc: number; cpu: string; node: string; loadavgBefore?: number[]; loadavgAtEnd: number[]; rssMB?: number; heapUsedMB?: number };
  gateway?: { process: string; rssBeforeMB: number; rssSteadyMB: number; rssEndMB: number; rssPeakMB: number; mbPer1000: number; cpuMsPerEvent?: number };
  client?: string;
  clientsRssMB?: number;
  clientsCpuMsPerEvent?: number;
  cpuMsPerEventByProcess?: Record<string, number>;
  lastClient: Dist;
  medianClient: Dist;
  perEvent: { event: number; first: number; p50: number; p99: number; last: number }[];
}

function render(all: Record<string, Run>): string {
  const current = Object.values(all).filter((r) => r.gateway);
  const earlier = Object.values(all).filter((r) => !r.gateway);
  const out = [
    '# Live subscriptions: delivery latency',
    '',
    'N graphql-ws subscribers on one gateway (half MANAGER, half ADMIN: 2 resolution groups), one `approvalStatusChanged`',
    'event at a time. Latency = from the `requestApproval` response (the transaction with the outbox row committed) to a',
    'client receiving the event, its selection resolved through the opportunity, customer and auth subgraphs. Includes',
    "the outbox relay (woken by the commit; OUTBOX_POLL_MS is its idle poll), Kafka and the gateway's fan-out.",
    'The subscribers run in a child process (bench/subscriptions/clients.mjs); receipt and commit times are both',
    "`performance.timeOrigin + performance.now()` (the clock check: the subscriber process's clock read on receipt of an",
    'IPC message minus this process\'s clock at sending, an upper bound of the skew plus one IPC hop). "over events": the',
    'distribution of the per-event figure over the measured events (with 10 events, p99 is their max). Where the time',
    'goes, before/after comparisons and the memory budget: bench/results/subscriptions-profile.md.',
    '',
  ];
  const lean = (r: Run) => (r.client?.startsWith('graphql-ws') ? 1 : 0);
  for (const r of current.sort((a, b) => lean(a) - lean(b) || a.subscribers - b.subscribers || (a.connections ?? 0) - (b.connections ?? 0))) {
    const g = r.gateway!;
    out.push(
      `## ${r.mode}, ${r.subscribers} subscribers on ${r.connections} sockets${r.client?.startsWith('graphql-ws') ? ' (graphql-ws client)' : ''}`,
      '',
      `${r.date} · ${r.stack} · ${r.subscribers} subscribers on ${r.connections} WebSocket connections · ${r.events} events · OUTBOX_POLL_MS ${r.outboxPollMs} · clock check ${r.clockSkewBoundMs} ms`,
      `Machine: ${r.machine.nproc} CPUs (${r.machine.cpu}), Node ${r.machine.node}, load average before ${r.machine.loadavgBefore?.join(' / ')}, at the end ${r.machine.loadavgAtEnd.join(' / ')} (shared machine).`,
      `Memory (${g.process} process, RSS): ${g.rssBeforeMB} MB before the subscribers, ${g.rssSteadyMB} MB with all ${r.subscribers} registered (steady), ${g.rssEndMB} MB after the events, peak ${g.rssPeakMB} MB: ${g.mbPer1000} MB per 1,000 subscribers.` +
        (g.cpuMsPerEvent !== undefined ? ` Gateway CPU ${g.cpuMsPerEvent} ms per event (user + system, over the measured events).` : '') +
        (r.clientsRssMB
          ? ` Subscriber process (${r.client ?? 'graphql-ws createClient'}): RSS ${r.clientsRssMB} MB${r.clientsCpuMsPerEvent !== undefined ? `, CPU ${r.clientsCpuMsPerEvent} ms per event` : ''}.`
          : '') +
        (r.cpuMsPerEventByProcess
          ? ` CPU ms per event by process (the whole measured window, so the 200 ms pauses between events count too): ${Object.entries(r.cpuMsPerEventByProcess)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}.`
          : ''),
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
  if (earlier.length > 0) {
    out.push(
      '## Earlier runs: clients, gateway and all five subgraphs in one process',
      '',
      'The previous version of this benchmark (before the subscribers moved to a process of their own), OUTBOX_POLL_MS 100.',
      '',
      '| date | mode | subscribers (sockets) | events | last client p50 | p99 | median client p50 | RSS (whole process) | load average at the end |',
      '|---|---|---|---|---|---|---|---|---|',
      ...earlier.map(
        (r) =>
          `| ${r.date} | ${r.mode} | ${r.subscribers}${r.connections && r.connections !== r.subscribers ? ` (${r.connections})` : ''} | ${r.events} | ${ms(r.lastClient.p50)} | ${ms(r.lastClient.p99)} | ${ms(r.medianClient.p50)} | ${r.machine.rssMB ? `${r.machine.rssMB} MB` : '–'} | ${r.machine.loadavgAtEnd.join(' / ')} |`,
      ),
      '',
    );
  }
  out.push(
    'Run: `flock /tmp/quiet.lock npx tsx bench/subscriptions.ts` (real Postgres, Kafka, Redis; EMBEDDED=1 for the embedded Postgres and the in-process bus; STACK=single for one service process); N, EVENTS, PER_CONNECTION (subscriptions per socket), OUTBOX_POLL_MS, CPU_PROF env vars.',
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
