import { randomUUID } from 'node:crypto';
import { p } from '@mikro-orm/postgresql';
import { Migration } from '@mikro-orm/migrations';
import { createLogger } from '@crm/telemetry';
import { databaseUrlFor, readConfig } from '@crm/config';
import { defineRow, dropDatabase, newestByParent, openDatabase, pagesByParent, type Database } from '@crm/database';

const Note = defineRow({
  name: 'Note',
  tableName: 'notes',
  properties: {
    id: p.uuid().primary(),
    ownerId: p.uuid().fieldName('owner_id'),
    createdAt: p.datetime().fieldName('created_at'),
  },
});
class NotesMigration extends Migration {
  override async up() {
    this.addSql('CREATE TABLE notes (id uuid PRIMARY KEY, owner_id uuid NOT NULL, created_at timestamptz NOT NULL)');
  }
}

let db: Database;
let dbUrl: string | undefined;
const owners = [randomUUID(), randomUUID(), randomUUID()];
beforeAll(async () => {
  const config = readConfig(process.env, { DATA_DIR: 'memory', DATABASE_PREFIX: `tb${Date.now() % 1e6}_`, LOG_LEVEL: 'silent' });
  dbUrl = databaseUrlFor(config, 'batchtest');
  db = await openDatabase({ subgraph: 'batchtest', config, entities: [Note], migrations: [{ name: 'notes', class: NotesMigration }], logger: createLogger('t', 'silent') });
  const em = db.orm.em.fork();
  // owner 0: 5 notes, owner 1: 1 note, owner 2: none
  for (let i = 0; i < 5; i++) em.create(Note, { id: randomUUID(), ownerId: owners[0]!, createdAt: new Date(2026, 0, 1 + i) });
  em.create(Note, { id: randomUUID(), ownerId: owners[1]!, createdAt: new Date(2026, 0, 1) });
  await em.flush();
});
afterAll(async () => {
  if (db) {
    await db.orm.em.getConnection().execute('DROP TABLE notes');
    await db.close();
  }
  if (dbUrl) await dropDatabase(dbUrl); // a throwaway database on a real server
});

test('one statement pages every parent, with totals and cursors', async () => {
  const em = db.orm.em.fork();
  const before = db.statementCount();
  const pages = await pagesByParent(em, Note, 'ownerId', owners, {}, { first: 2 });
  expect(db.statementCount() - before).toBe(1);
  const p0 = pages.get(owners[0]!)!;
  expect(p0.totalCount).toBe(5);
  expect(p0.edges).toHaveLength(2);
  expect(p0.pageInfo.hasNextPage).toBe(true);
  expect(p0.edges[0]!.node.createdAt.getTime()).toBeGreaterThan(p0.edges[1]!.node.createdAt.getTime());
  expect(pages.get(owners[1]!)!.totalCount).toBe(1);
  expect(pages.get(owners[2]!)!.edges).toHaveLength(0);

  const next = await pagesByParent(em, Note, 'ownerId', [owners[0]!], {}, { first: 2, after: p0.pageInfo.endCursor });
  const n0 = next.get(owners[0]!)!;
  expect(n0.totalCount).toBe(5);
  expect(n0.edges.map((e) => e.node.id)).not.toContain(p0.edges[1]!.node.id);
  expect(n0.edges[0]!.node.createdAt.getTime()).toBeLessThan(p0.edges[1]!.node.createdAt.getTime());
});

test('newestByParent: one statement, the newest `limit` rows of each parent, grouped in the order asked', async () => {
  const em = db.orm.em.fork();
  const before = db.statementCount();
  const rows = await newestByParent<{ id: string; ownerId: string; createdAt: Date }>(em, Note, 'ownerId', [owners[2]!, owners[1]!, owners[0]!], {}, { limit: 3 });
  expect(db.statementCount() - before).toBe(1);
  expect(rows.map((r) => r.ownerId)).toEqual([owners[1], owners[0], owners[0], owners[0]]);
  const mine = rows.filter((r) => r.ownerId === owners[0]);
  expect(mine.map((r) => r.createdAt.getTime())).toEqual([new Date(2026, 0, 5).getTime(), new Date(2026, 0, 4).getTime(), new Date(2026, 0, 3).getTime()]);
  // a filter applies within each parent's rows, before the limit
  const older = await newestByParent<{ createdAt: Date }>(em, Note, 'ownerId', [owners[0]!], { createdAt: { $lt: new Date(2026, 0, 3) } }, { props: ['createdAt'], limit: 3 });
  expect(older.map((r) => r.createdAt.getTime())).toEqual([new Date(2026, 0, 2).getTime(), new Date(2026, 0, 1).getTime()]);
  expect(await newestByParent(em, Note, 'ownerId', [], {}, { limit: 3 })).toEqual([]);
});

test('pagesByParent with count: false reads the same pages and no totals (NaN, which GraphQL refuses as an Int)', async () => {
  const em = db.orm.em.fork();
  const withTotals = await pagesByParent(em, Note, 'ownerId', owners, {}, { first: 2 });
  const before = db.statementCount();
  const pages = await pagesByParent(em, Note, 'ownerId', owners, {}, { first: 2, count: false });
  expect(db.statementCount() - before).toBe(1);
  for (const owner of owners) {
    expect(pages.get(owner)!.edges.map((e) => e.node.id)).toEqual(withTotals.get(owner)!.edges.map((e) => e.node.id));
    expect(pages.get(owner)!.pageInfo).toEqual(withTotals.get(owner)!.pageInfo);
    expect(pages.get(owner)!.totalCount).toBeNaN();
  }
  expect(withTotals.get(owners[2]!)!.totalCount).toBe(0);
});
