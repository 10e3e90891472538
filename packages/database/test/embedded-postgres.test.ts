/**
 * The embedded default's Postgres (src/embedded-postgres.ts) on the real server binaries: the
 * ordinary driver talks to it; a launcher killed with SIGKILL leaves its server running and the
 * next start reuses it (no stale-lock failure); a second owner of the same directory while one
 * runs is refused; a server that cannot start says why (its log), not an empty error; stop()
 * leaves no server process behind; a server killed while the platform runs comes back on the same
 * URL with everything committed.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { removeEmbeddedPostgres, startEmbeddedPostgres } from '../src/embedded-postgres';

const root = mkdtempSync(join(tmpdir(), 'crm-embedded-pg-test-'));
chmodSync(root, 0o755); // as root, the server's user passes through
const dir = join(root, 'postgres');

afterAll(() => {
  removeEmbeddedPostgres(dir);
  rmSync(root, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function query(url: string, sql: string) {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

test('a killed launcher leaves its server running; the next start reuses it, a second owner is refused, stop() ends it', async () => {
  // a launcher that starts the server (initdb on first use), then is killed with SIGKILL
  const owner = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/embedded-owner.ts')], {
    env: { ...process.env, DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  owner.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const first = await new Promise<{ pid: number; port: number; reused: boolean }>((resolve, reject) => {
    owner.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString())));
    owner.once('exit', (code) => reject(new Error(`owner exited ${code}: ${err}`)));
  });
  expect(first.reused).toBe(false);
  const exited = new Promise((r) => owner.once('exit', r));
  owner.kill('SIGKILL');
  await exited;
  expect(alive(first.pid)).toBe(true); // kill -9 of the launcher leaves the server running

  const pg = await startEmbeddedPostgres({ dir });
  expect(pg).toMatchObject({ reused: true, pid: first.pid, port: first.port });
  const [row] = await query(pg.url, 'SHOW fsync');
  expect(row.fsync).toBe('on');
  await query(pg.url, 'CREATE DATABASE reuse_check');

  // a second platform on the same directory while this one owns it: refused (another process, or this one)
  const second = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/embedded-owner.ts')], {
    env: { ...process.env, DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let secondErr = '';
  second.stderr.on('data', (d: Buffer) => (secondErr += d.toString()));
  const code = await new Promise((r) => second.once('exit', r));
  expect(code).toBe(1);
  expect(secondErr).toMatch(new RegExp(`Another platform \\(pid ${process.pid}\\) is running`));
  await expect(startEmbeddedPostgres({ dir })).rejects.toThrow(/Another platform \(pid \d+\) is running/);
  expect(alive(first.pid)).toBe(true); // and the server it would have shared is untouched

  await pg.stop();
  expect(alive(first.pid)).toBe(false);

  // started again (not reused): the data is still there
  const again = await startEmbeddedPostgres({ dir });
  expect(again.reused).toBe(false);
  expect(await query(again.url, `SELECT datname FROM pg_database WHERE datname = 'reuse_check'`)).toHaveLength(1);
  await again.stop();
  expect(alive(again.pid)).toBe(false);
});

/**
 * Kills the server with SIGKILL and waits until it is gone, then until the supervisor has started
 * another (a new pid, after a backoff) and `sql` is answered on the same URL.
 */
async function killedAndAnswered(pg: { url: string; readonly pid: number }, sql: string, withinMs = 60_000) {
  const pid = pg.pid;
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + withinMs;
  while (alive(pid) || pg.pid === pid) {
    if (Date.now() > deadline) throw new Error(`server ${pid} not replaced within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(alive(pg.pid)).toBe(true);
  return query(pg.url, sql);
}

test('a server killed with SIGKILL while the platform runs comes back on the same URL, with every commit (started here, and taken over from a killed run)', async () => {
  const pg = await startEmbeddedPostgres({ dir });
  expect(pg.reused).toBe(false);
  expect(pg.status()).toEqual({ state: 'up', restarts: 0, pid: pg.pid });
  const seen: string[] = [];
  pg.onStatus((s) => seen.push(`${s.state} ${s.restarts} ${s.lastExit}`));
  await query(pg.url, 'CREATE TABLE IF NOT EXISTS survives (n int)');
  await query(pg.url, 'INSERT INTO survives VALUES (1)');
  expect(await killedAndAnswered(pg, 'SELECT n FROM survives')).toEqual([{ n: 1 }]);

  // killed twice in a row: still comes back (its backoff grows, it never gives up)
  await query(pg.url, 'INSERT INTO survives VALUES (2)');
  expect(await killedAndAnswered(pg, 'SELECT n FROM survives ORDER BY n')).toEqual([{ n: 1 }, { n: 2 }]);
  expect(seen).toEqual(['restarting 0 SIGKILL', 'up 1 SIGKILL', 'restarting 1 SIGKILL', 'up 2 SIGKILL']);
  expect(pg.status()).toEqual({ state: 'up', restarts: 2, pid: pg.pid, lastExit: 'SIGKILL' });
  await pg.stop();
  expect(alive(pg.pid)).toBe(false);

  // a server taken over from a killed launcher is watched by its pid
  const owner = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/embedded-owner.ts')], {
    env: { ...process.env, DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const left = await new Promise<{ pid: number }>((resolve, reject) => {
    owner.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString())));
    owner.once('exit', (code) => reject(new Error(`owner exited ${code}`)));
  });
  const ownerGone = new Promise((r) => owner.once('exit', r));
  owner.kill('SIGKILL');
  await ownerGone;
  const reused = await startEmbeddedPostgres({ dir });
  expect(reused).toMatchObject({ reused: true, pid: left.pid });
  expect(await killedAndAnswered(reused, 'SELECT count(*)::int AS n FROM survives')).toEqual([{ n: 2 }]);
  expect(reused.status()).toMatchObject({ state: 'up', restarts: 1, lastExit: 'gone' });
  await reused.stop();
  expect(alive(reused.pid)).toBe(false);
});

test('a server that cannot start says why, from its log', async () => {
  await expect(startEmbeddedPostgres({ dir, settings: { shared_buffers: 'plenty' } })).rejects.toThrow(/shared_buffers/);
});
