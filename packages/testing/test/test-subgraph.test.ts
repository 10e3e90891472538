/**
 * The kit's one-subgraph test helper: the production bootstrap on a throwaway database and bus,
 * requests signed for made-up identities, events published as their owner would, absent peers,
 * and nothing left behind (on real Postgres the database is dropped at stop).
 */
import { join } from 'node:path';
import { Client } from 'pg';
import { eventually, startTestSubgraph, userData, type TestSubgraph } from '@crm/testing';
import { type SubgraphDefinition } from '@crm/runtime';

const whoami: SubgraphDefinition = {
  name: 'whoami',
  schemaPath: join(__dirname, 'fixtures/whoami.graphql'),
  resolvers: {
    Query: {
      whoami: (_: unknown, __: unknown, ctx) => ctx.identity?.email ?? null,
      peerUser: async (_: unknown, args: { id: string }, ctx) => String(await ctx.peers.entity('auth', 'User', args.id, 'id')),
    },
  },
  entities: [],
  migrations: [],
  // consumed user.created events land in the kit's inbox
  consumes: { 'user.created': async () => undefined },
};

let sg: TestSubgraph;
beforeAll(async () => {
  sg = await startTestSubgraph(whoami);
});
afterAll(async () => {
  await sg?.stop();
});

test('calls are signed for the identity given; anonymous is null; unsigned requests are refused', async () => {
  const ada = sg.user('MANAGER', 'Ada');
  expect(ada).toMatchObject({ role: 'MANAGER', name: 'Ada', identity: { userId: ada.id, role: 'MANAGER', email: ada.email } });
  expect((await ada.gql('{ whoami }')).data).toEqual({ whoami: ada.email });
  expect((await sg.call(null, '{ whoami }')).data).toEqual({ whoami: null });
  const unsigned = await fetch(sg.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ whoami }' }) });
  expect(unsigned.status).toBe(401);
});

test("published events are built as their owner builds them and reach the subgraph's consumer", async () => {
  const user = sg.user('SALES');
  const env = await sg.publish('user.created', user.id, userData(user), { actorId: user.id });
  expect(env).toMatchObject({ source: 'auth', type: 'user.created', aggregateId: user.id, actorId: user.id, data: { userId: user.id, role: 'SALES', active: true } });
  await eventually(async () => (await sg.sql('SELECT 1 FROM inbox WHERE event_id = ?', [env.id])).length === 1);
});

test('peers are absent unless given: the read-through has no one to ask (undefined: the local copy decides)', async () => {
  const r = await sg.user('ADMIN').gql('query($id: ID!) { peerUser(id: $id) }', { id: '00000000-0000-4000-8000-000000000001' });
  expect(r.errors).toBeUndefined();
  expect(r.data.peerUser).toBe('undefined');
});

(process.env.POSTGRES_URL ? test : test.skip)('on real Postgres the database is uniquely named and dropped at stop', async () => {
  const other = await startTestSubgraph(whoami);
  const database = async (t: TestSubgraph) => (await t.sql<{ name: string }>('SELECT current_database() AS name'))[0]!.name;
  const name = await database(other);
  expect(name).toMatch(/^t[0-9a-f]{8}_whoami$/);
  expect(await database(sg)).not.toBe(name);
  await other.stop();
  const client = new Client({ connectionString: process.env.POSTGRES_URL });
  await client.connect();
  try {
    expect((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount).toBe(0);
  } finally {
    await client.end();
  }
});
