/**
 * The Postgres event log across a crash of its server: a throwaway cluster of our own (initdb +
 * pg_ctl on a port of this file's range; the shared server is never touched) is stopped in
 * immediate mode (no shutdown checkpoint: recovery from the WAL, as after a power cut of the
 * server process) while a publisher and a consumer group work, then started again. Every publish
 * that resolved is delivered afterwards, per key in publish order; the consumer says it is held
 * while the server is away (active() false) and resumes by itself.
 * Runs where the Postgres server binaries are installed (as the postgres user when run as root).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readConfig } from '@crm/config';
import { freePort } from '@crm/database';
import { PostgresBus } from '../src/buses';
import type { Subscription } from '../src/bus';
import { eventually } from '@crm/testing';

const PG_BIN = existsSync('/usr/lib/postgresql')
  ? readdirSync('/usr/lib/postgresql')
      .sort()
      .map((v) => `/usr/lib/postgresql/${v}/bin`)
      .pop()
  : undefined;
const enabled = Boolean(PG_BIN && existsSync(join(PG_BIN, 'pg_ctl')));
let PG_PORT = 0;
const PG_DIR = `/tmp/crm-log-pg-${randomBytes(4).toString('hex')}`;
const run = promisify(execFile);
const asPostgres = (cmd: string, args: string[]) =>
  process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', join(PG_BIN!, cmd), ...args], { timeout: 120_000 }) : run(join(PG_BIN!, cmd), args, { timeout: 120_000 });
const pgCtlStart = () =>
  asPostgres('pg_ctl', ['-D', join(PG_DIR, 'data'), '-l', join(PG_DIR, 'log'), '-w', '-o', `-p ${PG_PORT} -k ${PG_DIR} -c listen_addresses=127.0.0.1`, 'start']);
/** Starts the server; a port taken meanwhile by another process (the range is shared with the
 *  kernel's outgoing ports) is tried again a few times, and a failure says what the server logged. */
async function start(newPort: boolean): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (newPort) PG_PORT = await freePort();
    try {
      await pgCtlStart();
      return;
    } catch (e) {
      const log = existsSync(join(PG_DIR, 'log')) ? readFileSync(join(PG_DIR, 'log'), 'utf8').split('\n').slice(-15).join('\n') : '';
      if (attempt >= 5) throw new Error(`${(e as Error).message}\nserver log (tail):\n${log}`, { cause: e });
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}
const server = (cmd: 'start' | 'crash') => (cmd === 'start' ? start(false) : asPostgres('pg_ctl', ['-D', join(PG_DIR, 'data'), '-m', 'immediate', '-w', 'stop']));

(enabled ? describe : describe.skip)('Postgres event log: its server crashes and comes back', () => {
  jest.setTimeout(300_000);
  let bus: PostgresBus | undefined;
  let sub: Subscription | undefined;

  beforeAll(async () => {
    mkdirSync(PG_DIR, { recursive: true });
    if (process.getuid?.() === 0)
      chownSync(PG_DIR, Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), Number(execFileSync('id', ['-g', 'postgres']).toString().trim()));
    await asPostgres('initdb', ['-D', join(PG_DIR, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
    await start(true);
  });
  afterAll(async () => {
    await sub?.stop().catch(() => undefined);
    await bus?.close().catch(() => undefined);
    await asPostgres('pg_ctl', ['-D', join(PG_DIR, 'data'), '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    rmSync(PG_DIR, { recursive: true, force: true });
  });

  test('every acknowledged publish is delivered after the crash, in order per key; the consumer resumes by itself', async () => {
    const config = readConfig(process.env, {
      KAFKA_BROKERS: '',
      POSTGRES_URL: `postgresql://postgres@127.0.0.1:${PG_PORT}/postgres`,
      KAFKA_TOPIC_PARTITIONS: '3',
      LOG_LEVEL: 'silent',
    });
    bus = new PostgresBus(config, 'restart', undefined, { heartbeatMs: 300, pollMs: 500 });
    expect(await bus.prepare(['orders'])).toBe('ready');
    const seen: string[] = [];
    sub = await bus.subscribe({
      groupId: 'g',
      topics: ['orders'],
      batchSize: 20,
      partitionsConcurrently: 3,
      handleBatch: async (ms) => void seen.push(...ms.map((m) => m.value!.toString())),
    });

    // a publisher like the relay: a batch at a time, a failed one tried again; only resolved ones count
    const acked: string[] = [];
    let failed = 0;
    let stop = false;
    let n = 0;
    const publisher = (async () => {
      while (!stop) {
        const batch = Array.from({ length: 10 }, () => `k${n % 7}:${n++}`);
        for (;;) {
          try {
            await bus.publish(batch.map((v) => ({ topic: 'orders', key: v.split(':')[0]!, value: v })));
            acked.push(...batch);
            break;
          } catch {
            failed += 1;
            if (stop) return;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      }
    })();
    await eventually(async () => acked.length >= 200 && seen.length >= 100, { timeoutMs: 120_000 });
    await server('crash');
    await eventually(async () => failed > 0, { timeoutMs: 60_000 }); // publishing refused while it is down
    expect(await bus.healthy()).toBe(false);
    await eventually(async () => !sub!.active(), { timeoutMs: 60_000 }); // the consumer says it is held
    await server('start');
    const afterRestart = acked.length;
    await eventually(async () => acked.length >= afterRestart + 200, { timeoutMs: 120_000 });
    stop = true;
    await publisher;
    await eventually(async () => acked.every((v) => seen.includes(v)), { timeoutMs: 120_000 });
    // per key, in publish order (a batch handled but not committed before the crash may come twice)
    for (let k = 0; k < 7; k++) {
      const firsts = [...new Set(seen.filter((v) => v.startsWith(`k${k}:`)))].map((v) => Number(v.split(':')[1]));
      const published = acked.filter((v) => v.startsWith(`k${k}:`)).map((v) => Number(v.split(':')[1]));
      expect(firsts.slice(0, published.length)).toEqual(published);
    }
    expect(await bus.healthy()).toBe(true);
    expect(sub.active()).toBe(true);
  });
});
