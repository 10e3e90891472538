/**
 * The customer subgraph alone, called as the gateway calls it (signed identities): CRUD and
 * validation, search, the authorization matrix, soft delete and _entities. Reps come from user.*
 * events as auth publishes them. The federated reads and batching across auth are in
 * e2e/customer-federation.test.ts.
 */
import { startTestSubgraph, type GraphQLResult, type TestCaller, type TestSubgraph } from '@crm/testing';
import { SEARCH_TEXT } from '../src/customers';
import { customerSubgraph } from '../src';
import { ASSIGN, CREATE, DELETE, GET, LIST, UPDATE, code, create, createFor, field, ids, newUser } from './helpers';

let customer: TestSubgraph;
let admin: TestCaller;
let manager: TestCaller;
let compliance: TestCaller;
let alice: TestCaller; // SALES
let bob: TestCaller; // SALES

beforeAll(async () => {
  customer = await startTestSubgraph(customerSubgraph);
  admin = await newUser(customer, 'ADMIN');
  manager = await newUser(customer, 'MANAGER', 'Mia Manager');
  compliance = await newUser(customer, 'COMPLIANCE', 'Cleo Compliance');
  alice = await newUser(customer, 'SALES', 'Alice Sales');
  bob = await newUser(customer, 'SALES', 'Bob Sales');
}, 240_000); // a subgraph starts in seconds, slower on a loaded machine
afterAll(async () => {
  await customer?.stop();
});

describe('CRUD and validation', () => {
  test('SALES creates a customer assigned to themselves, reads and updates it', async () => {
    const c = await create(alice, {
      name: '  Acme Corp  ',
      email: 'info@acme.test',
      phone: '+1 (555) 123-4567',
      industry: 'Manufacturing',
      size: 'LARGE',
      investmentProfile: 'MODERATE',
      riskTolerance: 'LOW',
    });
    expect(c).toMatchObject({
      name: 'Acme Corp',
      email: 'info@acme.test',
      phone: '+1 (555) 123-4567',
      industry: 'Manufacturing',
      size: 'LARGE',
      investmentProfile: 'MODERATE',
      riskTolerance: 'LOW',
      assignedRep: { id: alice.id },
    });
    // (the rep's name and email are auth's: e2e/customer-federation.test.ts)
    const read = await alice.gql(`query($id: ID!) { customer(id: $id) { id name assignedRep { id } } }`, { id: c.id });
    expect(read.data.customer).toEqual({ id: c.id, name: 'Acme Corp', assignedRep: { id: alice.id } });

    const up = await alice.gql(UPDATE, { id: c.id, input: { name: 'Acme Corporation', email: null, size: 'ENTERPRISE' } });
    expect(up.errors).toBeUndefined();
    expect(up.data.updateCustomer).toMatchObject({ name: 'Acme Corporation', email: null, phone: '+1 (555) 123-4567', size: 'ENTERPRISE' });
    expect(new Date(up.data.updateCustomer.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(c.createdAt as string).getTime());

    // the events are staged in the same transaction, with the changed fields
    const em = customer.runtime.fork();
    const rows = await em.execute<{ type: string; envelope: { data: { changes?: string[] } } }[]>(`SELECT type, envelope FROM outbox WHERE key = ? ORDER BY created_at`, [c.id]);
    expect(rows.map((r) => r.type)).toEqual(['customer.created', 'customer.updated']);
    expect(rows[1]!.envelope.data.changes).toEqual(['name', 'email', 'size']);
  });

  test('MANAGER creates for an active SALES rep, or unassigned; not for a non-rep', async () => {
    const c = await createFor(manager, bob.id, { name: 'For Bob' });
    expect(c.assignedRep).toEqual({ id: bob.id });
    const none = await create(manager, { name: 'Nobody yet' });
    expect(none.assignedRep).toBeNull();
    const toManager = await manager.gql(CREATE, { input: { name: 'X', assignedRepId: manager.id } });
    expect(code(toManager)).toBe('BAD_USER_INPUT');
    expect(field(toManager)).toBe('assignedRepId');
    const toUnknown = await manager.gql(CREATE, { input: { name: 'X', assignedRepId: '00000000-0000-4000-8000-000000000000' } });
    expect(field(toUnknown)).toBe('assignedRepId');
    const badId = await manager.gql(CREATE, { input: { name: 'X', assignedRepId: 'not-a-uuid' } });
    expect(field(badId)).toBe('assignedRepId');
  });

  test.each([
    [{ name: '' }, 'name'],
    [{ name: '   ' }, 'name'],
    [{ name: 'x'.repeat(201) }, 'name'],
    [{ name: 'ok', email: 'not-an-email' }, 'email'],
    [{ name: 'ok', email: 'a@b' }, 'email'],
    [{ name: 'ok', phone: '12345' }, 'phone'],
    [{ name: 'ok', phone: '1'.repeat(21) }, 'phone'],
    [{ name: 'ok', phone: '555-CALL-NOW' }, 'phone'],
    [{ name: 'ok', phone: '+1 555 0100; DROP' }, 'phone'],
  ])('createCustomer %j → BAD_USER_INPUT on %s', async (input, name) => {
    const r = await alice.gql(CREATE, { input });
    expect(code(r)).toBe('BAD_USER_INPUT');
    expect(field(r)).toBe(name);
  });

  test('valid edge cases: 200-char name, 6 and 20 digit phones, empty optional text means none', async () => {
    const c = await create(alice, { name: 'n'.repeat(200), phone: '12-34.56', email: '', industry: ' ' });
    expect(c).toMatchObject({ phone: '12-34.56', email: null, industry: null });
    await create(alice, { name: 'Long phone', phone: '+44 (0) 1234 567 890 1234 56' });
  });

  test('enum values are checked (the field is named in the error)', async () => {
    const r = await alice.gql(CREATE, { input: { name: 'ok', size: 'HUGE' } });
    expect(code(r)).toBe('BAD_USER_INPUT');
    expect(r.errors?.[0]?.message).toMatch(/size/);
    const u = await alice.gql(CREATE, { input: { name: 'ok', riskTolerance: 'EXTREME' } });
    expect(code(u)).toBe('BAD_USER_INPUT');
    expect(u.errors?.[0]?.message).toMatch(/riskTolerance/);
  });

  test('updateCustomer validates too, and name cannot be cleared', async () => {
    const c = await create(alice, { name: 'To update' });
    const nul = await alice.gql(UPDATE, { id: c.id, input: { name: null } });
    expect(code(nul)).toBe('BAD_USER_INPUT');
    expect(field(nul)).toBe('name');
    const email = await alice.gql(UPDATE, { id: c.id, input: { email: 'nope' } });
    expect(field(email)).toBe('email');
    const phone = await alice.gql(UPDATE, { id: c.id, input: { phone: '(12)' } });
    expect(field(phone)).toBe('phone');
    const unknown = await manager.gql(UPDATE, { id: '00000000-0000-4000-8000-000000000000', input: { name: 'x' } });
    expect(code(unknown)).toBe('NOT_FOUND');
  });

  test('pagination: first/after walk the list without overlap; first is bounded', async () => {
    const carol = await newUser(customer, 'SALES', 'Carol Pages');
    for (let i = 0; i < 5; i++) await create(carol, { name: `Page ${i}` });
    const p1 = await carol.gql(LIST, { first: 2 });
    expect(p1.data.customers.totalCount).toBe(5);
    expect(p1.data.customers.pageInfo.hasNextPage).toBe(true);
    const p2 = await carol.gql(LIST, { first: 2, after: p1.data.customers.pageInfo.endCursor });
    const p3 = await carol.gql(LIST, { first: 2, after: p2.data.customers.pageInfo.endCursor });
    const all = [...ids(p1), ...ids(p2), ...ids(p3)];
    expect(new Set(all).size).toBe(5);
    expect(p3.data.customers.pageInfo.hasNextPage).toBe(false);
    expect(p1.data.customers.edges[0].node.name).toBe('Page 4'); // newest first
    expect(field(await carol.gql(LIST, { first: 101 }))).toBe('first');
    expect(field(await carol.gql(LIST, { after: 'garbage' }))).toBe('after');
  });
});

describe('search', () => {
  let dana: TestCaller;
  const made: Record<string, string> = {};
  beforeAll(async () => {
    dana = await newUser(customer, 'SALES', 'Dana Search');
    made.globex = (await create(dana, { name: 'Globex Holdings', email: 'Contact@GLOBEX.example', phone: '+1 (555) 010-9999' })).id;
    made.initech = (await create(dana, { name: 'Initech', email: 'peter@initech.example', phone: '020 7946 0018' })).id;
    made.umbrella = (await create(dana, { name: 'Umbrella 100% Corp', email: 'info@umbrella.example' })).id;
    made.under = (await create(dana, { name: 'snake_case ltd' })).id;
    made.inject = (await create(dana, { name: `Robert'); DROP TABLE customers;--`, email: 'bobby@tables.example' })).id;
    made.quote = (await create(dana, { name: `O'Brien " \\ ' OR '1'='1` })).id;
  });
  const search = async (term: string) => ids(await dana.gql(LIST, { search: term, first: 100 })).sort();
  const just = (...keys: string[]) => keys.map((k) => made[k]!).sort();

  test('by name, email or phone, case-insensitive substring', async () => {
    expect(await search('globex')).toEqual(just('globex')); // name and email
    expect(await search('GLOBEX HOLD')).toEqual(just('globex'));
    expect(await search('@initech.EXAMPLE')).toEqual(just('initech'));
    expect(await search('010-99')).toEqual(just('globex'));
    expect(await search('7946')).toEqual(just('initech'));
    expect(await search('ITEC')).toEqual(just('initech'));
    expect(await search('.example')).toEqual(just('globex', 'initech', 'umbrella', 'inject'));
    expect(await search('no such thing')).toEqual([]);
    const r = await dana.gql(LIST, { search: 'globex', first: 100 });
    expect(r.data.customers.totalCount).toBe(1);
  });

  test('LIKE wildcards match literally', async () => {
    expect(await search('100%')).toEqual(just('umbrella'));
    expect(await search('%')).toEqual(just('umbrella'));
    expect(await search('e_c')).toEqual(just('under'));
    expect(await search('_')).toEqual(just('under'));
    expect(await search('\\')).toEqual(just('quote'));
  });

  test('SQL-injection-looking strings are stored, returned and searched verbatim', async () => {
    const r = await dana.gql(GET, { id: made.inject });
    expect(r.data.customer.name).toBe(`Robert'); DROP TABLE customers;--`);
    expect(await search(`'); DROP TABLE customers;--`)).toEqual(just('inject'));
    expect(await search(`' OR '1'='1`)).toEqual(just('quote'));
    expect((await dana.gql(GET, { id: made.quote })).data.customer.name).toBe(`O'Brien " \\ ' OR '1'='1`);
    // the table is still there
    expect((await dana.gql(LIST, { first: 1 })).data.customers.totalCount).toBe(6);
  });

  test('SALES search only their own customers; MANAGER searches all; filter by rep', async () => {
    await create(alice, { name: 'Globex Subsidiary' });
    expect(await search('globex')).toEqual(just('globex'));
    const m = await manager.gql(LIST, { search: 'globex', first: 100 });
    expect(m.data.customers.totalCount).toBe(2);
    const byRep = await manager.gql(LIST, { search: 'globex', rep: dana.id, first: 100 });
    expect(ids(byRep)).toEqual([made.globex]);
    // a SALES asking for someone else's customers gets none
    const other = await alice.gql(LIST, { rep: dana.id, first: 100 });
    expect(other.data.customers.totalCount).toBe(0);
    expect(field(await dana.gql(LIST, { search: 'x'.repeat(201) }))).toBe('search');
  });
});

describe('search and keyset pages served by indexes', () => {
  let erin: TestCaller;
  const made: Record<string, string> = {};
  beforeAll(async () => {
    erin = await newUser(customer, 'SALES', 'Erin Span');
    made.span = (await create(erin, { name: 'Spanner Ltd', email: 'zed@spanner.example', phone: '+44 20 7946 0999' })).id;
    made.nomail = (await create(erin, { name: 'Quiet Spanner', phone: '0999 123 456' })).id;
    made.nophone = (await create(erin, { name: 'Bolt Works', email: 'bolt@works.example' })).id;
  });
  const search = async (term: string) => ids(await erin.gql(LIST, { search: term, first: 100 })).sort();
  const just = (...keys: string[]) => keys.map((k) => made[k]!).sort();

  test('a term matches within one of name, email and phone, never across two (null columns included)', async () => {
    expect(await search('spanner')).toEqual(just('span', 'nomail')); // name of both, email of one
    expect(await search('0999')).toEqual(just('span', 'nomail')); // phone
    expect(await search('BOLT@')).toEqual(just('nophone'));
    // the end of the name and the start of the email, or of the email and the phone: no match
    expect(await search('Ltdzed')).toEqual([]);
    expect(await search('Ltd zed')).toEqual([]);
    expect(await search('Ltd\u0001zed')).toEqual([]); // the index expression's separator: the term is matched column by column
    expect(await search('example+44')).toEqual([]);
    expect(await search('Spanner0999')).toEqual([]);
    expect(await search('Works\u0001bolt')).toEqual([]);
    const r = await erin.gql(LIST, { search: 'spanner', first: 1 });
    expect(r.data.customers.totalCount).toBe(2);
    const p2 = await erin.gql(LIST, { search: 'spanner', first: 1, after: r.data.customers.pageInfo.endCursor });
    expect([...ids(r), ...ids(p2)].sort()).toEqual(just('span', 'nomail'));
    expect(p2.data.customers.pageInfo.hasNextPage).toBe(false);
  });

  test("the search expression is the trigram index's, the cursor an index condition (EXPLAIN)", async () => {
    const em = customer.runtime.fork();
    const trgm = await em.execute<{ n: number }[]>(`SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pg_trgm'`);
    const plans: Record<string, string> = {};
    const explain = async (tx: typeof em, sql: string, params: unknown[] = []) =>
      (await tx.execute<{ 'QUERY PLAN': string }[]>(`EXPLAIN ${sql}`, params)).map((r) => r['QUERY PLAN']).join('\n');
    // 5,000 more rows for the planner to weigh (rolled back): on a handful of rows any plan will do
    await em
      .transactional(async (tx) => {
        await tx.execute(`INSERT INTO customers (id, name, email, created_at, updated_at)
        SELECT gen_random_uuid(), 'Filler ' || i, 'filler' || i || '@fill.example', now() - i * interval '1 minute', now() FROM generate_series(1, 5000) i`);
        await tx.execute('ANALYZE customers');
        await tx.execute('SET LOCAL enable_seqscan = off');
        if (trgm[0]!.n > 0) {
          plans.search = await explain(
            tx,
            `SELECT t.id FROM customers t WHERE t.deleted_at IS NULL AND ${SEARCH_TEXT('t')} ILIKE '%spanner%'
          ORDER BY t.created_at DESC, t.id DESC LIMIT 51`,
          );
        }
        const at = new Date(Date.now() - 2_000 * 60_000).toISOString();
        plans.cursor = await explain(
          tx,
          `SELECT t.id FROM customers t WHERE t.deleted_at IS NULL AND t.created_at <= ? AND (t.created_at < ? OR (t.created_at = ? AND t.id < ?))
        ORDER BY t.created_at DESC, t.id DESC LIMIT 51`,
          [at, at, at, made.span],
        );
        throw new Error('roll back');
      })
      .catch((err: Error) => {
        if (err.message !== 'roll back') throw err;
      });
    if (trgm[0]!.n > 0) expect(plans.search).toContain('customers_search_trgm');
    expect(plans.cursor).toMatch(/Index Cond: \(created_at <= /);
  });

  test('pages through rows created at the same instant by id, without overlap or gap', async () => {
    const frank = await newUser(customer, 'SALES', 'Frank Ties');
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.push((await create(frank, { name: `Tie ${i}` })).id);
    const em = customer.runtime.fork();
    await em.execute(`UPDATE customers SET created_at = '2026-01-02T03:04:05.678Z' WHERE id IN (?, ?, ?)`, mine.slice(1, 4));
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const r: GraphQLResult = await frank.gql(LIST, { first: 2, after });
      expect(r.errors).toBeUndefined();
      seen.push(...ids(r));
      after = r.data.customers.pageInfo.endCursor;
      if (!r.data.customers.pageInfo.hasNextPage) break;
    }
    // newest first; the three equal created_at in id order, descending; then the oldest-dated
    const tied = mine.slice(1, 4).sort().reverse();
    expect(seen).toEqual([mine[4], mine[0], ...tied]);
  });
});

describe('authorization matrix', () => {
  let ownedByAlice: string;
  let ownedByBob: string;
  beforeAll(async () => {
    ownedByAlice = (await create(alice, { name: 'Matrix A' })).id;
    ownedByBob = (await create(bob, { name: 'Matrix B' })).id;
  });

  test('customer(id): SALES only their own (null otherwise); MANAGER, ADMIN, COMPLIANCE all', async () => {
    expect((await alice.gql(GET, { id: ownedByAlice })).data.customer.id).toBe(ownedByAlice);
    const other = await alice.gql(GET, { id: ownedByBob });
    expect(other.errors).toBeUndefined();
    expect(other.data.customer).toBeNull();
    for (const u of [manager, admin, compliance]) expect((await u.gql(GET, { id: ownedByBob })).data.customer.id).toBe(ownedByBob);
    expect((await alice.gql(GET, { id: 'not-a-uuid' })).data.customer).toBeNull();
  });

  test("customers: SALES list only their own; the others list everyone's", async () => {
    const a = ids(await alice.gql(LIST, { first: 100 }));
    expect(a).toContain(ownedByAlice);
    expect(a).not.toContain(ownedByBob);
    for (const u of [manager, admin, compliance]) {
      const all = await u.gql(LIST, { search: 'Matrix', first: 100 });
      expect(ids(all).sort()).toEqual([ownedByAlice, ownedByBob].sort());
    }
  });

  test('createCustomer: SALES for themselves only; MANAGER/ADMIN for any rep; COMPLIANCE never', async () => {
    const forBob = await alice.gql(CREATE, { input: { name: 'Sneaky', assignedRepId: bob.id } });
    expect(code(forBob)).toBe('FORBIDDEN');
    const forSelf = await alice.gql(CREATE, { input: { name: 'Explicit self', assignedRepId: alice.id } });
    expect(forSelf.data.createCustomer.assignedRep.id).toBe(alice.id);
    expect((await createFor(admin, alice.id, { name: 'By admin' })).assignedRep).toEqual({ id: alice.id });
    expect(code(await compliance.gql(CREATE, { input: { name: 'Nope' } }))).toBe('FORBIDDEN');
    expect(code(await customer.call(null, CREATE, { input: { name: 'Anonymous' } }))).toBe('UNAUTHENTICATED');
  });

  test('updateCustomer: SALES only their own; MANAGER/ADMIN any; COMPLIANCE never', async () => {
    expect((await alice.gql(UPDATE, { id: ownedByAlice, input: { industry: 'Retail' } })).data.updateCustomer.industry).toBe('Retail');
    const other = await alice.gql(UPDATE, { id: ownedByBob, input: { industry: 'Hacked' } });
    expect(code(other)).toBe('NOT_FOUND');
    expect(code(await compliance.gql(UPDATE, { id: ownedByBob, input: { industry: 'X' } }))).toBe('FORBIDDEN');
    expect((await manager.gql(UPDATE, { id: ownedByBob, input: { industry: 'Energy' } })).data.updateCustomer.industry).toBe('Energy');
    expect((await admin.gql(UPDATE, { id: ownedByBob, input: { industry: 'Energy2' } })).data.updateCustomer.industry).toBe('Energy2');
    expect((await manager.gql(GET, { id: ownedByBob })).data.customer.industry).toBe('Energy2');
  });

  test('assignCustomer: MANAGER/ADMIN only, to an active SALES rep', async () => {
    const c = await create(alice, { name: 'To reassign' });
    expect(code(await alice.gql(ASSIGN, { id: c.id, repId: bob.id }))).toBe('FORBIDDEN');
    expect(code(await compliance.gql(ASSIGN, { id: c.id, repId: bob.id }))).toBe('FORBIDDEN');
    const toManager = await manager.gql(ASSIGN, { id: c.id, repId: manager.id });
    expect(code(toManager)).toBe('BAD_USER_INPUT');
    expect(field(toManager)).toBe('repId');
    const ok = await manager.gql(ASSIGN, { id: c.id, repId: bob.id });
    expect(ok.data.assignCustomer.assignedRep.id).toBe(bob.id);
    // now it is Bob's: Alice no longer sees it
    expect((await alice.gql(GET, { id: c.id })).data.customer).toBeNull();
    expect((await bob.gql(GET, { id: c.id })).data.customer.id).toBe(c.id);
    const back = await admin.gql(ASSIGN, { id: c.id, repId: alice.id });
    expect(back.data.assignCustomer.assignedRep.id).toBe(alice.id);
    expect(code(await manager.gql(ASSIGN, { id: '00000000-0000-4000-8000-000000000000', repId: bob.id }))).toBe('NOT_FOUND');
    const em = customer.runtime.fork();
    const events = await em.execute<{ envelope: { data: { fromRepId: string; assignedRepId: string } } }[]>(
      `SELECT envelope FROM outbox WHERE key = ? AND type = 'customer.reassigned' ORDER BY created_at`,
      [c.id],
    );
    expect(events.map((e) => [e.envelope.data.fromRepId, e.envelope.data.assignedRepId])).toEqual([
      [alice.id, bob.id],
      [bob.id, alice.id],
    ]);
  });

  test('deleteCustomer: MANAGER/ADMIN only', async () => {
    const a = await create(alice, { name: 'Del A' });
    const b = await create(alice, { name: 'Del B' });
    expect(code(await alice.gql(DELETE, { id: a.id }))).toBe('FORBIDDEN');
    expect(code(await compliance.gql(DELETE, { id: a.id }))).toBe('FORBIDDEN');
    expect((await manager.gql(DELETE, { id: a.id })).data.deleteCustomer.id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await admin.gql(DELETE, { id: b.id })).data.deleteCustomer.id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('soft delete', () => {
  test('a deleted customer disappears from every read and cannot be changed', async () => {
    const c = await create(alice, { name: 'Vanishing Vendor', email: 'gone@vanish.example' });
    const del = await manager.gql(DELETE, { id: c.id });
    expect(del.errors).toBeUndefined();
    const sagaId = del.data.deleteCustomer.id as string;

    for (const u of [alice, manager, compliance]) expect((await u.gql(GET, { id: c.id })).data.customer).toBeNull();
    expect(ids(await manager.gql(LIST, { search: 'vanish', first: 100 }))).toEqual([]);
    // User.customers of the caller, as the gateway asks for it (`me` is auth's)
    const mine = await alice.gql(`query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id customers(first: 100) { edges { node { id } } } } } }`, {
      r: [{ __typename: 'User', id: alice.id }],
    });
    expect(mine.data._entities[0].customers.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(c.id);
    const ent = await customer.call(manager.identity, `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id name } } }`, {
      r: [{ __typename: 'Customer', id: c.id }],
    });
    expect(ent.errors).toBeUndefined();
    expect(ent.data._entities).toEqual([null]);

    expect(code(await manager.gql(UPDATE, { id: c.id, input: { name: 'Back' } }))).toBe('NOT_FOUND');
    expect(code(await manager.gql(ASSIGN, { id: c.id, repId: alice.id }))).toBe('NOT_FOUND');
    expect(code(await manager.gql(DELETE, { id: c.id }))).toBe('NOT_FOUND');

    // customer.deleted and the first saga step carry the saga id as correlation id
    const em = customer.runtime.fork();
    const rows = await em.execute<{ type: string; key: string; envelope: { correlationId: string; actorId: string; data: Record<string, unknown> } }[]>(
      `SELECT type, key, envelope FROM outbox WHERE envelope->>'correlationId' = ? ORDER BY created_at, type`,
      [sagaId],
    );
    const byType = Object.fromEntries(rows.map((r) => [r.type, r]));
    expect(byType['customer.deleted']!.key).toBe(c.id);
    expect(byType['customer.deleted']!.envelope.data).toMatchObject({ customerId: c.id, sagaId, requestedBy: manager.id, assignedRepId: alice.id });
    expect(byType['customer.deleted']!.envelope.actorId).toBe(manager.id);
    expect(byType['customer.saga_step']!.key).toBe(sagaId);
    expect(byType['customer.saga_step']!.envelope.data).toMatchObject({
      sagaId,
      sagaType: 'customer-deletion',
      subjectId: c.id,
      step: 'customer.soft-delete',
      status: 'DONE',
      expectedSteps: ['customer.soft-delete', 'sales-activity.remove-activities', 'opportunity.cancel-requests', 'analytics.archive-notifications'],
    });
  });
});

describe('federation', () => {
  test('_entities: the owner and MANAGER get the customer, another SALES user gets null', async () => {
    const c = await create(alice, { name: 'Entity Ltd' });
    const Q = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id name assignedRep { id } } } }`;
    const reps = [
      { __typename: 'Customer', id: c.id },
      { __typename: 'Customer', id: 'not-a-uuid' },
    ];
    const asAlice = await customer.call(alice.identity, Q, { r: reps });
    expect(asAlice.data._entities).toEqual([{ id: c.id, name: 'Entity Ltd', assignedRep: { id: alice.id } }, null]);
    const asBob = await customer.call(bob.identity, Q, { r: reps });
    expect(asBob.errors).toBeUndefined();
    expect(asBob.data._entities).toEqual([null, null]);
    const asManager = await customer.call(manager.identity, Q, { r: reps.slice(0, 1) });
    expect(asManager.data._entities[0].id).toBe(c.id);
  });
});
