/**
 * One initORM for every subgraph: its own database, on real Postgres (crm_<name>, created if
 * missing) or, in embedded mode, on PGlite served over a local socket so that the ordinary
 * Postgres driver — the production code path — talks to it. Migrations run on open, under a
 * Postgres advisory lock, so replicas starting at once against an empty database migrate once.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { MikroORM, type EntitySchema, type Options } from '@mikro-orm/postgresql';
import { Migrator, type Migration } from '@mikro-orm/migrations';
import { Client } from 'pg';
import type { PlatformConfig } from './config';
import { databaseUrlFor } from './config';
import type { Logger } from './logger';

export type MigrationClass = new (...args: ConstructorParameters<typeof Migration>) => Migration;
export interface MigrationEntry {
  name: string;
  class: MigrationClass;
}

/**
 * Work the service does on its own (outbox relay, event consumers, jobs) runs inside this
 * context, so statement counts can tell it apart from the statements a request caused.
 */
export const backgroundWork = new AsyncLocalStorage<string>();
export const inBackground = <T>(name: string, fn: () => Promise<T>): Promise<T> => backgroundWork.run(name, fn);

export interface Database {
  orm: MikroORM;
  /** Statements caused by requests since start (not the relay's, consumers' or jobs'); tests compare counts to prove batching. */
  statementCount(): number;
  /** Statements of background work (relay, consumers, jobs). */
  backgroundStatementCount(): number;
  embedded: boolean;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  subgraph: string;
  config: PlatformConfig;
  entities: EntitySchema<any, any>[];
  migrations: MigrationEntry[];
  logger: Logger;
  /** Overrides the URL derived from the config (tests). */
  url?: string;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const { subgraph, config, logger } = options;
  const url = options.url ?? databaseUrlFor(config, subgraph);
  let closeEmbedded: (() => Promise<void>) | undefined;
  let clientUrl: string;
  if (url) {
    await ensureDatabase(url);
    clientUrl = url;
  } else {
    const embedded = await startEmbeddedPostgres(config.DATA_DIR, subgraph);
    clientUrl = embedded.url;
    closeEmbedded = embedded.close;
    logger.info({ dataDir: embedded.dataDir }, 'embedded PGlite database');
  }
  const ormOptions: Options = {
    clientUrl,
    entities: options.entities,
    extensions: [Migrator],
    // PGlite serves one connection; a bigger pool would interleave transactions.
    // (PGlite ignores startup parameters: there the timeouts are SET on the connection when it opens.)
    pool: closeEmbedded ? { min: 0, max: 1, afterCreate: setTimeoutsOn(sessionTimeouts(config)) } : { min: 0, max: config.DATABASE_POOL_MAX },
    migrations: {
      migrationsList: options.migrations,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      disableForeignKeys: false,
      silent: true,
    },
    // Every connection carries its timeouts (startup parameters): a frozen or runaway session
    // cannot hold locks or a transaction open for ever.
    driverOptions: { connection: sessionTimeouts(config) },
    debug: false,
    allowGlobalContext: false,
    discovery: { warnWhenNoEntities: false },
  };
  const orm = await MikroORM.init(ormOptions);
  let statements = 0;
  let background = 0;
  orm.em.getConnection().getKnex().on('query', () => {
    if (backgroundWork.getStore()) background += 1;
    else statements += 1;
  });
  const migrator = orm.getMigrator();
  // PGlite serves this process alone; on a shared Postgres the replicas of a subgraph take turns.
  const ran = closeEmbedded ? await migrator.up() : await withMigrationLock(clientUrl, logger, () => migrator.up());
  if (ran.length > 0) logger.info({ migrations: ran.map((m) => m.name) }, 'migrations applied');
  return {
    orm,
    embedded: Boolean(closeEmbedded),
    statementCount: () => statements,
    backgroundStatementCount: () => background,
    async close() {
      await orm.close(true);
      if (closeEmbedded) await closeEmbedded();
    },
  };
}

/**
 * The timeouts set on every connection of the pool (DATABASE_*_TIMEOUT_MS; 0 leaves one off):
 * statement_timeout, lock_timeout and idle_in_transaction_session_timeout, as node-postgres
 * startup parameters. A transaction left open by a frozen process is ended by the server, and its
 * locks released, after the idle-in-transaction timeout.
 */
export function sessionTimeouts(config: Pick<PlatformConfig, 'DATABASE_STATEMENT_TIMEOUT_MS' | 'DATABASE_LOCK_TIMEOUT_MS' | 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS'>) {
  const all = {
    statement_timeout: config.DATABASE_STATEMENT_TIMEOUT_MS,
    lock_timeout: config.DATABASE_LOCK_TIMEOUT_MS,
    idle_in_transaction_session_timeout: config.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  };
  return Object.fromEntries(Object.entries(all).filter(([, ms]) => ms > 0)) as Partial<typeof all>;
}

/** A knex pool afterCreate hook that SETs `timeouts` on each new connection (node-postgres client). */
function setTimeoutsOn(timeouts: Record<string, number | undefined>) {
  const statements = Object.entries(timeouts).map(([name, ms]) => `SET ${name} = ${Number(ms)}`).join('; ');
  return (conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) => {
    if (!statements) return done(null, conn);
    conn.query(statements, (err) => done(err, conn));
  };
}

/** Advisory lock key of migrations; advisory locks are per database, so one key serves every subgraph. */
export const MIGRATION_LOCK = 727_000;

/**
 * Runs `fn` holding a session-level advisory lock on the database of `url`, taken on a connection
 * of its own: a replica that starts while another migrates waits, then finds nothing pending.
 */
export async function withMigrationLock<T>(url: string, logger: Logger, fn: () => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const [first] = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [MIGRATION_LOCK])).rows;
    if (!first?.ok) {
      logger.info('another replica is migrating this database; waiting for it');
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    }
    return await fn();
  } finally {
    // Closing the session releases the lock too; unlock first so the next replica goes at once.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** CREATE DATABASE when missing; concurrent starters may race, so "already exists" is fine. */
async function ensureDatabase(url: string): Promise<void> {
  await onServerOf(url, async (client, name) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE "${name}"`).catch((err: { code?: string }) => {
        if (err.code !== '42P04' && err.code !== '23505') throw err;
      });
    }
  });
}

/** DROP DATABASE of `url` (a throwaway test database), closing its remaining sessions. */
export async function dropDatabase(url: string): Promise<void> {
  await onServerOf(url, (client, name) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}

/** Runs `fn` on the server's `postgres` database with the (checked) name of the database of `url`. */
async function onServerOf(url: string, fn: (client: Client, name: string) => Promise<unknown>): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!/^[a-zA-Z0-9_]+$/.test(name)) throw new Error(`Refusing to create or drop database with unusual name "${name}"`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await fn(client, name);
  } finally {
    await client.end();
  }
}

async function startEmbeddedPostgres(dataRoot: string, subgraph: string) {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite-socket'),
  ]);
  const memory = dataRoot === 'memory';
  const dataDir = memory ? 'memory://' : resolve(join(dataRoot, subgraph));
  if (!memory) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(memory ? undefined : dataDir);
  const port = await freePort();
  const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 1 });
  await server.start();
  return {
    dataDir,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres?sslmode=disable`,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}
