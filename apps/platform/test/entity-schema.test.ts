/**
 * Entities are declared once (defineRow, kit db.ts) and the tables are made by the migrations: a
 * fresh database of each subgraph, migrated with its migrations (the kit's first), must match what
 * its entities declare (the kit's outbox and inbox included), as MikroORM's schema comparator sees
 * it — no table, column, type, nullability, default or primary key of an entity differs, so the
 * entities would need no new migration.
 *
 * The database holds more than the entities describe, all of it made by raw SQL in the migrations
 * and read and written by raw SQL; these are not differences, and are left out:
 * - indexes and unique constraints (partial, expression and trigram indexes; the entities declare none),
 * - CHECK constraints (allowed values of status-like text columns, which MikroORM reads back as a
 *   column's enum items: the entities type those columns with a union instead) and foreign keys
 *   (the entities map ids as plain uuid columns, not relations),
 * - the tables and columns listed below, each unmapped on purpose.
 * Anything an entity declares that the database lacks or has otherwise fails, and so does a listed
 * table or column that is no longer there (or is now mapped): the lists cannot go stale.
 */
import { DatabaseSchema, SchemaComparator, type SchemaDifference } from '@mikro-orm/postgresql';
import { databaseUrlFor, readConfig } from '@crm/config';
import { dropDatabase } from '@crm/database';
import { openSubgraphDatabase, type SubgraphDefinition } from '@crm/runtime';
import { createLogger } from '@crm/telemetry';
import { SUBGRAPHS } from '../src/subgraphs';

/** Tables no entity maps, in every subgraph's database (kit migrations). */
const UNMAPPED_TABLES = [
  'aggregate_versions', // each aggregate's last version, kept by the outbox insert trigger
  'aggregate_versions_floor', // the floor of pruned aggregate versions (retention)
];

/** Columns no entity property maps, `table.column` (every subgraph has the kit's outbox). */
const OUTBOX_COLUMNS = [
  'outbox.seq',
  'outbox.aggregate_version', // publication order and aggregate version, set by the insert trigger
  'outbox.failed_at',
  'outbox.lease_owner',
  'outbox.lease_until', // the relay's parking and leases (raw SQL)
];
const UNMAPPED_COLUMNS: Record<string, string[]> = {
  auth: OUTBOX_COLUMNS,
  // the aggregate version a directory / projection row was last written at (raw upserts compare it)
  customer: [...OUTBOX_COLUMNS, 'reps.version'],
  opportunity: [...OUTBOX_COLUMNS, 'customer_refs.version'],
  'sales-activity': [...OUTBOX_COLUMNS, 'customer_refs.version'],
  analytics: [
    ...OUTBOX_COLUMNS,
    'customer_facts.version',
    'approval_facts.version',
    'task_facts.version',
    'user_refs.version',
    'meeting_facts.version',
    'meeting_facts.deleted', // a deleted meeting's tombstone (raw upserts; reports skip it)
    'notifications.seq', // the live feed's resume order, from a sequence default
    'sagas.timed_out_at', // set by the timeout job's raw UPDATE
  ],
};

/** What differs between the migrated database and the entities, leaving out what the header names. */
function differences(diff: SchemaDifference, unmappedColumns: string[]): string[] {
  const found: string[] = [];
  const unqualified = (name: string) => name.replace(/^public\./, '');
  for (const table of Object.values(diff.newTables)) found.push(`table ${table.name}: declared by an entity, not in the database`);
  const removedTables = Object.values(diff.removedTables).map((t) => unqualified(t.name));
  for (const name of removedTables) if (!UNMAPPED_TABLES.includes(name)) found.push(`table ${name}: in the database, no entity maps it`);
  for (const name of UNMAPPED_TABLES) if (!removedTables.includes(name)) found.push(`table ${name}: listed as unmapped, but missing or mapped`);
  const removedColumns: string[] = [];
  for (const table of Object.values(diff.changedTables)) {
    const t = unqualified(table.name);
    if (table.changedComment !== undefined) found.push(`table ${t}: comment differs`);
    for (const c of Object.keys(table.addedColumns)) found.push(`column ${t}.${c}: declared by an entity, not in the database`);
    for (const [c, change] of Object.entries(table.changedColumns)) {
      const changed = [...change.changedProperties].filter((p) => !(p === 'enumItems' && !change.column.enumItems?.length));
      if (changed.length > 0) found.push(`column ${t}.${c}: ${changed.join(', ')} differ(s)`);
    }
    for (const c of Object.keys(table.renamedColumns)) found.push(`column ${t}.${c}: renamed`);
    for (const c of Object.keys(table.removedColumns)) removedColumns.push(`${t}.${c}`);
    const declared = {
      index: [table.addedIndexes, table.changedIndexes, table.renamedIndexes],
      check: [table.addedChecks, table.changedChecks],
      'foreign key': [table.addedForeignKeys, table.changedForeignKeys],
    };
    for (const [kind, groups] of Object.entries(declared))
      for (const group of groups) for (const name of Object.keys(group)) found.push(`${kind} ${t}.${name}: declared by an entity, not so in the database`);
  }
  for (const column of removedColumns) if (!unmappedColumns.includes(column)) found.push(`column ${column}: in the database, no entity property maps it`);
  for (const column of unmappedColumns) if (!removedColumns.includes(column)) found.push(`column ${column}: listed as unmapped, but missing or mapped`);
  return found;
}

async function schemaDifferences(def: SubgraphDefinition<unknown>): Promise<string[]> {
  const config = readConfig(process.env, { DATA_DIR: 'memory', DATABASE_PREFIX: `es${Date.now() % 1e6}_`, LOG_LEVEL: 'silent' });
  const db = await openSubgraphDatabase(def, config, createLogger('entity-schema', 'silent'));
  try {
    const { orm } = db;
    const platform = orm.em.getPlatform();
    // as SqlSchemaGenerator.getUpdateSchemaSQL compares, but keeping the structured difference
    const target = orm.schema.getTargetSchema();
    const actual = await DatabaseSchema.create(orm.em.getConnection(), platform, orm.config, undefined, target.getNamespaces());
    actual.prune(undefined, []);
    target.prune(undefined, []);
    return differences(new SchemaComparator(platform).compare(actual, target), UNMAPPED_COLUMNS[def.name] ?? []);
  } finally {
    await db.close();
    await dropDatabase(databaseUrlFor(config, def.name)!);
  }
}

test.each(SUBGRAPHS.map((def) => [def.name, def] as const))('the entities of %s match its migrated database (no schema difference)', async (_name, def) => {
  expect(await schemaDifferences(def)).toEqual([]);
});
