// Side-by-side federation gateway benchmark (Benchmark 1), modeled on The
// Guild's graphql-gateways-benchmark, federation "constant VUs" scenario.
//
//   npm install --prefix bench/gateways        # once; not a root workspace
//   node bench/gateways/run.mjs                # or: npm run bench:gateways --prefix bench/gateways
//
// Env:
//   DURATION=30     measured seconds per gateway     WARMUP=5      warm-up seconds
//   CONNECTIONS=50  concurrent keep-alive connections (the "VUs")
//   WORKERS=N       worker processes of every gateway (default: CPUs given to the gateway);
//                   WORKERS=1,2 runs every gateway with 1, then with 2 workers
//   GATEWAYS=a,b    subset/order (default: ceiling,apollo-gateway,hive-gateway,
//                   hive-gateway-router-runtime,crm; opt-in: hive-gateway-guild-config,
//                   crm-no-dedupe)
//   PIN=0           do not pin with taskset
//   QUIET_WAIT=S    before each gateway's load, wait up to S seconds until other
//                   processes leave the gateway's CPU(s) (< 10% busy); default 0
//   GATEWAY_PORT=4580, SUBGRAPH_BASE_PORT=4590 (subgraphs on +1..+4)
//   RESULTS_DIR     default <repo>/bench/results
//   MERGE=1         replace only the re-measured rows of the existing report
//                   (same DURATION/WARMUP/CONNECTIONS/WORKERS), keep the others
//
// Everything listens on and talks to 127.0.0.1 only.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const TMP = path.join(HERE, '.tmp');
const RESULTS_DIR = path.resolve(process.env.RESULTS_DIR ?? path.join(REPO_ROOT, 'bench', 'results'));

if (!existsSync(path.join(HERE, 'node_modules', '@apollo', 'gateway'))) {
  console.error('bench/gateways dependencies are missing: run `npm install --prefix bench/gateways` first.');
  process.exit(1);
}

const { REQUEST_BODY } = await import('./lib/query.mjs');
const { expectedResult } = await import('./lib/expected.mjs');
const { planFetchCount } = await import('./lib/plan.mjs');
const { composeSupergraph } = await import('./supergraph/compose.mjs');

const DURATION = Number(process.env.DURATION ?? 30);
const WARMUP = Number(process.env.WARMUP ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const QUIET_WAIT = Number(process.env.QUIET_WAIT ?? 0);
const GATEWAY_PORT = Number(process.env.GATEWAY_PORT ?? 4580);
const SUBGRAPH_BASE_PORT = Number(process.env.SUBGRAPH_BASE_PORT ?? 4590);
const URL_ = `http://127.0.0.1:${GATEWAY_PORT}/graphql`;
const NODE = process.execPath;

// ---------------------------------------------------------------- CPU pinning
// On N CPUs the gateway gets the upper half, the load generator, the
// subgraphs and this script the lower half. On 2 cores: gateway on cpu 1,
// everything else on cpu 0, and WORKERS defaults to 1 (one per gateway CPU),
// so the gateway never competes with the load it is measured under.
const NPROC = os.availableParallelism();
const HAS_TASKSET = process.env.PIN !== '0' && NPROC >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const half = Math.floor(NPROC / 2);
const GATEWAY_CPUS = HAS_TASKSET ? range(half, NPROC) : range(0, NPROC);
const LOAD_CPUS = HAS_TASKSET ? range(0, half) : range(0, NPROC);
// WORKERS=1,2 measures every gateway with 1 worker, then every gateway with 2.
const WORKER_COUNTS = String(process.env.WORKERS ?? GATEWAY_CPUS.length)
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => n >= 1);
const WORKERS = WORKER_COUNTS.join(',');
// More workers than the gateway's CPUs: that row's gateway gets every CPU (Hive Gateway refuses to
// fork more workers than the CPUs it may use), the same for every gateway at that worker count.
const gatewayCpusFor = (workers) => (HAS_TASKSET && workers > GATEWAY_CPUS.length ? range(0, NPROC) : GATEWAY_CPUS);
function range(a, b) {
  return Array.from({ length: b - a }, (_, i) => a + i);
}
function pinned(cpus, cmd, args) {
  return HAS_TASKSET ? ['taskset', ['-c', cpus.join(','), cmd, ...args]] : [cmd, args];
}
if (HAS_TASKSET) spawnSync('taskset', ['-a', '-p', '-c', LOAD_CPUS.join(','), String(process.pid)], { stdio: 'ignore' });

// ---------------------------------------------------------------- gateways
const hiveBin = path.join(HERE, 'node_modules', '@graphql-hive', 'gateway', 'dist', 'bin.js');
const hiveCwd = path.join(TMP, 'hive-cwd'); // empty dir: no stray gateway.config.* is picked up
const hiveArgs = (file, workers) => [hiveBin, 'supergraph', file, '--host', '127.0.0.1', '--port', String(GATEWAY_PORT), '--fork', String(workers)];

const GATEWAYS = {
  ceiling: {
    label: 'ceiling (pre-computed response)',
    cmd: (f) => [NODE, [path.join(HERE, 'runners', 'ceiling.mjs')]],
  },
  'apollo-gateway': {
    label: `@apollo/gateway ${pkgVersion('@apollo/gateway')} + @apollo/server ${pkgVersion('@apollo/server')}`,
    cmd: (f) => [NODE, [path.join(HERE, 'runners', 'apollo-gateway.mjs')]],
    // As crm runs it: Apollo Gateway's own usage-metrics export (and its start-up cloud probes) off.
    env: { APOLLO_TELEMETRY_DISABLED: 'true' },
  },
  'hive-gateway': {
    label: `Hive Gateway ${pkgVersion('@graphql-hive/gateway')} (CLI, default JS planner)`,
    cmd: (f, w) => [NODE, hiveArgs(f, w)],
    cwd: hiveCwd,
  },
  'hive-gateway-router-runtime': {
    label: `Hive Gateway ${pkgVersion('@graphql-hive/gateway')} + router-runtime ${pkgVersion('@graphql-hive/router-runtime')} (Rust planner)`,
    cmd: (f, w) => [NODE, [...hiveArgs(f, w), '--hive-router-runtime']],
    cwd: hiveCwd,
  },
  'hive-gateway-guild-config': {
    label: `Hive Gateway ${pkgVersion('@graphql-hive/gateway')} as configured by the public benchmark (--jit, inbound request dedup)`,
    cmd: (f, w) => [NODE, [...hiveArgs(f, w), '-c', path.join(HERE, 'runners', 'hive-gateway.guild.config.mjs')]],
    cwd: hiveCwd,
  },
  crm: {
    label: 'crm (this repo: gateway/, defaults: inbound dedupe off, subgraph fetch dedupe on)',
    cmd: (f) => [NODE, [path.join(HERE, 'runners', 'crm.mjs')]],
    cwd: REPO_ROOT,
    probe: true,
  },
  'crm-inbound-dedupe': {
    label: 'crm with INBOUND_DEDUPE=true (opt-in: identical concurrent client requests share one execution; not comparable)',
    cmd: (f) => [NODE, [path.join(HERE, 'runners', 'crm.mjs')]],
    cwd: REPO_ROOT,
    probe: true,
    env: { CRM_ENV_INBOUND_DEDUPE: 'true' },
  },
  'crm-no-dedupe': {
    label: 'crm with SUBGRAPH_DEDUPE=false (no deduplication at all)',
    cmd: (f) => [NODE, [path.join(HERE, 'runners', 'crm.mjs')]],
    cwd: REPO_ROOT,
    probe: true,
    env: { CRM_ENV_INBOUND_DEDUPE: 'false', CRM_ENV_SUBGRAPH_DEDUPE: 'false' },
  },
};
const DEFAULT_ORDER = ['ceiling', 'apollo-gateway', 'hive-gateway', 'hive-gateway-router-runtime', 'hive-gateway-guild-config', 'crm', 'crm-inbound-dedupe', 'crm-no-dedupe'];
const ORDER = (process.env.GATEWAYS ? process.env.GATEWAYS.split(',') : DEFAULT_ORDER).map((s) => s.trim()).filter(Boolean);
for (const g of ORDER)
  if (!GATEWAYS[g]) {
    console.error(`unknown gateway "${g}"; known: ${Object.keys(GATEWAYS).join(', ')}`);
    process.exit(1);
  }

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

// ---------------------------------------------------------------- helpers
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();

function start(name, cmd, args, { env = {}, cwd = HERE, log }) {
  const out = log ? openLog(log) : 'ignore';
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: true });
  if (typeof out === 'number') closeSync(out);
  child.exitPromise = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  child.label = name;
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function openLog(file) {
  mkdirSync(path.dirname(file), { recursive: true });
  return openSync(file, 'w');
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {}
  const t = setTimeout(() => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }, 5000);
  await child.exitPromise;
  clearTimeout(t);
  // make sure no worker of the group survives
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {}
}
async function cleanup() {
  await Promise.all([...children].map(stop));
}
process.on('SIGINT', () => {
  cleanup().finally(() => process.exit(130));
});
process.on('SIGTERM', () => {
  cleanup().finally(() => process.exit(143));
});

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function post(url, body, timeoutMs = 30_000) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, text };
}

function firstDiff(a, b, p = '$') {
  if (isDeepStrictEqual(a, b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = firstDiff(a[k], b[k], Array.isArray(a) ? `${p}[${k}]` : `${p}.${k}`);
      if (d) return d;
    }
  }
  return `${p}: got ${JSON.stringify(a)?.slice(0, 120)}, expected ${JSON.stringify(b)?.slice(0, 120)}`;
}

// /proc sampling of a process tree (the gateway and all its workers).
function treePids(root) {
  const pids = [root];
  for (let i = 0; i < pids.length; i++) {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${pids[i]}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${pids[i]}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) pids.push(Number(c));
      } catch {}
    }
  }
  return pids;
}
function treeRssBytes(root) {
  let kb = 0;
  for (const pid of treePids(root)) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {}
  }
  return kb * 1024;
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;
function treeCpuSeconds(root) {
  let ticks = 0;
  for (const pid of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime + stime
    } catch {}
  }
  return ticks / CLK_TCK;
}
// Busy/total ticks of a set of CPUs from /proc/stat.
function cpuTicks(cpus) {
  let busy = 0,
    total = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m || !cpus.includes(Number(m[1]))) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const idle = v[3] + (v[4] ?? 0);
    const sum = v.slice(0, 8).reduce((a, b) => a + b, 0);
    busy += sum - idle;
    total += sum;
  }
  return { busy, total };
}
// Waits (up to maxSec) until the gateway's CPUs are < 10% busy over 2 s while
// the gateway is idle, i.e. other processes of the shared machine left them.
async function waitQuiet(maxSec, cpus) {
  const t0 = Date.now();
  let busy = 100;
  while ((Date.now() - t0) / 1000 < maxSec) {
    const a = cpuTicks(cpus);
    await sleep(2000);
    const b = cpuTicks(cpus);
    busy = Math.round(((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100);
    if (busy < 10) return { quiet: true, busy, seconds: Math.round((Date.now() - t0) / 1000) };
  }
  return { quiet: false, busy, seconds: Math.round((Date.now() - t0) / 1000) };
}
function rssSampler(pid) {
  let peak = 0;
  const tick = () => {
    peak = Math.max(peak, treeRssBytes(pid));
  };
  tick();
  const iv = setInterval(tick, 250);
  return {
    stop() {
      clearInterval(iv);
      tick();
      return peak;
    },
  };
}

async function subgraphStats() {
  const res = await fetch(`http://127.0.0.1:${SUBGRAPH_BASE_PORT + 1}/__stats`);
  return res.json();
}

async function load(seconds) {
  const [cmd, args] = pinned(LOAD_CPUS, NODE, [path.join(HERE, 'lib', 'load.mjs'), URL_, String(seconds), String(CONNECTIONS)]);
  const child = spawn(cmd, args, { cwd: HERE, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let out = '';
  child.stdout.on('data', (c) => {
    out += c;
  });
  const { code } = await new Promise((r) => child.once('exit', (code) => r({ code })));
  children.delete(child);
  if (code !== 0) throw new Error(`load generator exited with ${code}`);
  return JSON.parse(out);
}

// ---------------------------------------------------------------- machine
function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    nproc: NPROC,
    cpuModel: model,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

// ---------------------------------------------------------------- main
mkdirSync(TMP, { recursive: true });
mkdirSync(hiveCwd, { recursive: true });
mkdirSync(RESULTS_DIR, { recursive: true });

const expected = expectedResult();
const expectedBuf = Buffer.from(JSON.stringify(expected));
const expectedFile = path.join(TMP, 'expected.json');
writeFileSync(expectedFile, expectedBuf);

// REPORT_ONLY=1: rewrite gateways.md from gateways.json (e.g. after a change to the table), measuring nothing.
const REPORT_ONLY = process.env.REPORT_ONLY === '1';
let plan;
let reported; // REPORT_ONLY: the report being rewritten
const results = [];
if (REPORT_ONLY) {
  const prev = (reported = JSON.parse(readFileSync(path.join(RESULTS_DIR, 'gateways.json'), 'utf8')));
  results.push(...prev.results);
  plan = { fetches: prev.query.apolloPlanFetches, perService: prev.query.apolloPlanFetchesPerSubgraph };
} else {
  for (const port of [GATEWAY_PORT, ...[1, 2, 3, 4].map((i) => SUBGRAPH_BASE_PORT + i)]) {
    if (!(await portFree(port))) {
      console.error(`port ${port} on 127.0.0.1 is in use; set GATEWAY_PORT / SUBGRAPH_BASE_PORT`);
      process.exit(1);
    }
  }

  console.log(`machine: ${NPROC} CPUs (${machine().cpuModel}), node ${process.version}`);
  console.log(
    HAS_TASKSET
      ? `pinning: gateway on cpu ${GATEWAY_CPUS.join(',')}; load generator + subgraphs + this script on cpu ${LOAD_CPUS.join(',')}`
      : 'pinning: off (no taskset, PIN=0 or 1 CPU)',
  );
  console.log(`load: ${CONNECTIONS} connections, warm-up ${WARMUP}s, measured ${DURATION}s; WORKERS=${WORKERS} for every gateway`);

  const [sgCmd, sgArgs] = pinned(LOAD_CPUS, NODE, [path.join(HERE, 'subgraphs', 'server.mjs')]);
  const subgraphs = start('subgraphs', sgCmd, sgArgs, { env: { SUBGRAPH_BASE_PORT: String(SUBGRAPH_BASE_PORT) }, log: path.join(TMP, 'subgraphs.log') });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${SUBGRAPH_BASE_PORT + 4}/health`)).ok) break;
    } catch {}
    if (i > 100 || subgraphs.exitCode !== null) {
      console.error('subgraphs did not start; see bench/gateways/.tmp/subgraphs.log');
      await cleanup();
      process.exit(1);
    }
    await sleep(100);
  }
  // Compose from the running subgraphs' `_service { sdl }`.
  const supergraphSdl = await composeSupergraph({ fromSubgraphs: true, basePort: SUBGRAPH_BASE_PORT });
  const supergraphFile = path.join(TMP, 'supergraph.graphql');
  writeFileSync(supergraphFile, supergraphSdl);
  plan = planFetchCount(supergraphSdl);
  console.log(
    `supergraph composed (${supergraphSdl.length} B); Apollo query plan: ${plan.fetches} fetches ${JSON.stringify(plan.perService)}; expected response ${expectedBuf.length} B`,
  );

  for (const workers of WORKER_COUNTS)
    for (const name of ORDER) {
      const g = GATEWAYS[name];
      const r = { name, label: g.label, workers, status: 'ok', measuredAt: new Date().toISOString() };
      results.push(r);
      console.log(`\n== ${name} (${workers} worker${workers > 1 ? 's' : ''}): ${g.label}`);

      if (g.probe) {
        const p = spawnSync(NODE, [path.join(HERE, 'runners', 'crm.mjs'), '--probe'], { cwd: g.cwd, encoding: 'utf8', timeout: 120_000 });
        if (p.status !== 0) {
          r.status = 'skipped';
          r.note = (p.stdout || p.stderr || `probe exited ${p.status}`).trim().split('\n')[0];
          console.log(`   skipped: ${r.note}`);
          continue;
        }
        console.log(`   ${p.stdout.trim()}`);
      }

      const [cmd0, args0] = g.cmd(supergraphFile, workers);
      const gatewayCpus = gatewayCpusFor(workers);
      r.gatewayCpus = HAS_TASKSET ? gatewayCpus : null;
      const [cmd, args] = pinned(gatewayCpus, cmd0, args0);
      const logFile = path.join(TMP, `${name}.log`);
      const child = start(name, cmd, args, {
        cwd: g.cwd ?? HERE,
        log: logFile,
        env: {
          NODE_ENV: 'production',
          PORT: String(GATEWAY_PORT),
          HOST: '127.0.0.1',
          WORKERS: String(workers),
          SUPERGRAPH_FILE: supergraphFile,
          EXPECTED_FILE: expectedFile,
          ...g.env,
        },
      });

      try {
        // Wait until it answers the query (up to 120 s: first requests plan the query).
        let first;
        const t0 = Date.now();
        while (true) {
          if (child.exitCode !== null || child.signalCode !== null)
            throw new Error(`exited early (${child.exitCode ?? child.signalCode}); see ${path.relative(REPO_ROOT, logFile)}`);
          try {
            first = await post(URL_, REQUEST_BODY, 10_000);
            if (first.status < 500) break;
          } catch {}
          if (Date.now() - t0 > 120_000) throw new Error(`not answering after 120 s; see ${path.relative(REPO_ROOT, logFile)}`);
          await sleep(250);
        }
        r.startupMs = Date.now() - t0;

        // Correctness: deep-equal to the independently computed expected result.
        const before = await subgraphStats();
        const check = await post(URL_, REQUEST_BODY);
        const after = await subgraphStats();
        r.subgraphFetchesPerRequest = after.requests - before.requests;
        r.responseBytes = Buffer.byteLength(check.text);
        let json;
        try {
          json = JSON.parse(check.text);
        } catch {
          json = undefined;
        }
        const diff = check.status !== 200 ? `HTTP ${check.status}: ${check.text.slice(0, 200)}` : firstDiff(json, expected);
        r.correct = diff === null;
        if (!r.correct) {
          r.status = 'incorrect';
          r.note = diff;
          console.log(`   INCORRECT response: ${diff}`);
          continue;
        }
        console.log(
          `   correct (${r.responseBytes} B, ${r.subgraphFetchesPerRequest} subgraph requests, up in ${r.startupMs} ms); idle RSS ${(treeRssBytes(child.pid) / 2 ** 20).toFixed(0)} MB`,
        );
        r.idleRssBytes = treeRssBytes(child.pid);

        if (QUIET_WAIT > 0 && HAS_TASKSET) {
          const waited = await waitQuiet(QUIET_WAIT, gatewayCpus);
          r.quietWaitSec = waited.seconds;
          console.log(`   gateway CPU(s) ${waited.quiet ? 'quiet' : `still ${waited.busy}% busy`} after ${waited.seconds} s`);
        }
        r.loadavgBefore = os.loadavg().map((x) => +x.toFixed(2));
        const sampler = rssSampler(child.pid);
        if (WARMUP > 0) {
          const w = await load(WARMUP);
          console.log(`   warm-up: ${w.requests.average.toFixed(0)} req/s`);
        }
        const sg0 = await subgraphStats();
        const cpu0 = treeCpuSeconds(child.pid);
        const ticks0 = cpuTicks(gatewayCpus);
        const tStart = process.hrtime.bigint();
        const a = await load(DURATION);
        const wall = Number(process.hrtime.bigint() - tStart) / 1e9;
        const cpu1 = treeCpuSeconds(child.pid);
        const ticks1 = cpuTicks(gatewayCpus);
        const sg1 = await subgraphStats();
        r.peakRssBytes = sampler.stop();
        r.gatewayCpuPercent = +(((cpu1 - cpu0) / wall) * 100).toFixed(0);
        // CPU time other processes took on the gateway's CPUs (shared machine): busy
        // time of those CPUs minus the gateway's own, as % of one CPU.
        const busyPct = ((ticks1.busy - ticks0.busy) / CLK_TCK / wall) * 100;
        r.otherCpuOnGatewayCpusPercent = HAS_TASKSET ? Math.max(0, +(busyPct - r.gatewayCpuPercent).toFixed(0)) : null;
        r.requestsPerSec = +a.requests.average.toFixed(1);
        r.requestsTotal = a.requests.total;
        r.latencyMs = { p50: a.latency.p50, p90: a.latency.p90, p99: a.latency.p99, avg: +a.latency.average.toFixed(2), max: a.latency.max };
        r.errors = a.errors;
        r.timeouts = a.timeouts;
        r.non2xx = a.non2xx;
        // Includes the requests still in flight when the load stopped: an estimate.
        r.subgraphRequestsPerQueryUnderLoad = a.requests.total ? +((sg1.requests - sg0.requests) / a.requests.total).toFixed(1) : null;
        r.bytesPerResponse = a.requests.total ? Math.round(a.throughput.total / a.requests.total) : 0;

        // Re-check after the load.
        const post2 = await post(URL_, REQUEST_BODY);
        r.correctAfterLoad = post2.status === 200 && isDeepStrictEqual(JSON.parse(post2.text), expected);
        if (!r.correctAfterLoad) {
          r.status = 'incorrect-after-load';
          r.note = 'response differed from the expected result after the load';
        }
        console.log(
          `   ${r.requestsPerSec} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}, timeouts ${r.timeouts}, non-2xx ${r.non2xx}, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MB, gateway CPU ${r.gatewayCpuPercent}%, others on its CPU ${r.otherCpuOnGatewayCpusPercent ?? '?'}%`,
        );
      } catch (err) {
        r.status = 'failed';
        r.note = String(err?.message ?? err);
        console.log(`   FAILED: ${r.note}`);
      } finally {
        await stop(child);
        await sleep(500);
      }
    }

  await stop(subgraphs);
}

// ---------------------------------------------------------------- report
const m = reported?.machine ?? machine();
const date = reported?.date ?? new Date().toISOString();
// MERGE=1: re-measure some gateways (e.g. ones disturbed by other processes)
// and keep the other rows of the previous report, if its settings match.
const reportFile = path.join(RESULTS_DIR, 'gateways.json');
if (!REPORT_ONLY && process.env.MERGE === '1' && existsSync(reportFile)) {
  const prev = JSON.parse(readFileSync(reportFile, 'utf8'));
  const same =
    prev.settings && prev.settings.durationSec === DURATION && prev.settings.connections === CONNECTIONS && prev.settings.workers === WORKERS && prev.settings.warmupSec === WARMUP;
  if (same) {
    const id = (r) => `${r.name}/${r.workers}`;
    const fresh = new Map(results.map((r) => [id(r), r]));
    const merged = prev.results.map((r) => fresh.get(id(r)) ?? r);
    for (const r of results) if (!prev.results.some((p) => id(p) === id(r))) merged.push(r);
    results.splice(0, results.length, ...merged);
    console.log(`merged into the previous report (${prev.date}): re-measured ${[...fresh.keys()].join(', ')}`);
  } else {
    console.log('MERGE=1 ignored: the previous report used other settings');
  }
}
const crmWith = (workers) => results.find((r) => r.name === 'crm' && r.workers === workers && r.status === 'ok');
const crm = crmWith(WORKER_COUNTS[0]);
const report = {
  benchmark: 'federation gateways, constant connections (modeled on graphql-hive/graphql-gateways-benchmark "constant-vus-over-time")',
  date,
  machine: m,
  settings: {
    durationSec: DURATION,
    warmupSec: WARMUP,
    connections: CONNECTIONS,
    workers: WORKERS,
    pinning: HAS_TASKSET ? { gatewayCpus: GATEWAY_CPUS, loadgenAndSubgraphCpus: LOAD_CPUS } : null,
    loadGenerator: `autocannon ${pkgVersion('autocannon')}`,
  },
  query: { expectedResponseBytes: expectedBuf.length, apolloPlanFetches: plan.fetches, apolloPlanFetchesPerSubgraph: plan.perService },
  results,
};
if (!REPORT_ONLY) writeFileSync(reportFile, JSON.stringify(report, null, 2) + '\n');

const fmtMB = (b) => (b ? (b / 2 ** 20).toFixed(0) : '–');
// Requests per second of the gateway's own CPU time: less sensitive to what else runs on its core.
const perCpu = (r) => (r.gatewayCpuPercent ? (r.requestsPerSec / (r.gatewayCpuPercent / 100)).toFixed(0) : '–');
const ratio = (r) => (crmWith(r.workers) && r.requestsPerSec ? `${(r.requestsPerSec / crmWith(r.workers).requestsPerSec).toFixed(2)}×` : '–');
const lines = [];
lines.push('# Federation gateway benchmark (Benchmark 1)');
lines.push('');
lines.push(`Generated by \`bench/gateways/run.mjs\` on ${date}.`);
lines.push('');
lines.push(`- Machine: ${m.nproc} CPUs, ${m.cpuModel}, ${m.memGiB} GiB RAM, Node ${m.node}, ${m.platform}`);
lines.push(
  `- Load: autocannon, ${CONNECTIONS} keep-alive connections, ${WARMUP} s warm-up then ${DURATION} s measured, one query (${expectedBuf.length} B response, ${plan.fetches} subgraph fetches in Apollo's plan)`,
);
lines.push(`- Workers: ${WORKERS} per gateway (every gateway at each count; ratios are to crm with the same count)`);
lines.push(
  HAS_TASKSET
    ? `- Pinning (taskset): gateway on cpu ${GATEWAY_CPUS.join(',')}; load generator + subgraphs on cpu ${LOAD_CPUS.join(',')}` +
        (WORKER_COUNTS.some((w) => w > GATEWAY_CPUS.length)
          ? `; with more workers than that, the gateway may use every CPU (${range(0, NPROC).join(',')}) and shares them with the load generator and subgraphs (every gateway alike)`
          : '')
    : '- Pinning: none',
);
lines.push('- Subgraphs: Node `node:http` + `@apollo/subgraph`, responses cached by request body (never the bottleneck)');
lines.push("- Every gateway's response is checked deep-equal to the independently computed expected result before and after the load");
lines.push('');
lines.push(
  `| Gateway | Workers | req/s | vs crm | req per gateway CPU-second | p50 ms | p99 ms | errors | non-2xx | peak RSS MB | gateway CPU % | others on its CPU % | subgraph req per query (alone / under load) | status |`,
);
lines.push(`| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | :-- |`);
for (const r of results) {
  if (r.status === 'ok' || r.status === 'incorrect-after-load') {
    lines.push(
      `| ${r.name} | ${r.workers} | ${r.requestsPerSec} | ${ratio(r)} | ${perCpu(r)} | ${r.latencyMs.p50} | ${r.latencyMs.p99} | ${r.errors}${r.timeouts ? ` (${r.timeouts} timeouts)` : ''} | ${r.non2xx} | ${fmtMB(r.peakRssBytes)} | ${r.gatewayCpuPercent} | ${r.otherCpuOnGatewayCpusPercent ?? '–'} | ${r.subgraphFetchesPerRequest} / ${r.subgraphRequestsPerQueryUnderLoad ?? '–'} | ${r.status} |`,
    );
  } else {
    const note = String(r.note ?? '')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 200)
      .replace(/\|/g, '\\|');
    lines.push(`| ${r.name} | ${r.workers} | – | – | – | – | – | – | – | – | – | – | ${r.subgraphFetchesPerRequest ?? '–'} | ${r.status}: ${note} |`);
  }
}
lines.push('');
lines.push(
  "req per gateway CPU-second: req/s divided by the gateway's CPU time per second (a share of a core taken by other processes lowers req/s, much less this). errors: socket errors and timeouts (60 s, as k6's default) counted by autocannon. gateway CPU %: CPU time of the gateway process tree during the measured window / wall time (100 = one full core). others on its CPU %: CPU time that other processes of the (shared) machine took on the gateway's pinned CPU(s) in that window; well above 0 means the figures are disturbed. subgraph req per query: HTTP requests the subgraphs received for one query sent alone (Apollo's plan has " +
    plan.fetches +
    ' fetches; Hive Gateway batches entity fetches) / per query during the measured load (below the first figure when a gateway deduplicates identical concurrent requests or subgraph fetches).',
);
lines.push('');
lines.push(
  '"vs crm" is req/s relative to this repository\'s gateway with the same number of workers (above 1 = faster than crm)' + (crm ? '.' : '; crm did not run, so there is no ratio.'),
);
lines.push('');
lines.push('Gateways:');
for (const r of results) {
  const extra = [r.measuredAt && `measured ${r.measuredAt}`, r.loadavgBefore && `machine load average before: ${r.loadavgBefore.join(' / ')}`].filter(Boolean).join('; ');
  lines.push(`- **${r.name}**: ${r.label}${extra ? ` (${extra})` : ''}`);
}
lines.push('');
lines.push('The machine is shared: other processes (e.g. brokers, test suites) may run during the benchmark; the load averages above show how busy it was.');
lines.push('');
writeFileSync(path.join(RESULTS_DIR, 'gateways.md'), lines.join('\n'));
console.log(`\nresults: ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'gateways.md'))}, gateways.json`);
console.log(lines.filter((l) => l.startsWith('|')).join('\n'));
