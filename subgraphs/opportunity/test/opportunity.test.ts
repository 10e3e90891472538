/**
 * The opportunity subgraph alone, called as the gateway calls it (signed identities): approval requests from request to decision,
 * every forbidden and conflicting move, concurrent decisions, visibility per role, entity
 * resolution for direct (signed) calls, the local customer directory, the two saga steps, and
 * batching of Customer.approvalRequests. Customers and user deletions arrive as the customer and
 * auth subgraphs publish them.
 */
import { randomUUID } from 'node:crypto';
import { eventually, startTestSubgraph, userData, type TestCaller, type TestSubgraph } from '@crm/testing';
import { type EventData } from '@crm/events';
import { opportunitySubgraph } from '../src';

let opp: TestSubgraph;
let sales: TestCaller;
let otherSales: TestCaller;
let manager: TestCaller;
let otherManager: TestCaller;
let compliance: TestCaller;

beforeAll(async () => {
  opp = await startTestSubgraph(opportunitySubgraph);
  sales = opp.user('SALES');
  otherSales = opp.user('SALES');
  manager = opp.user('MANAGER');
  otherManager = opp.user('MANAGER');
  compliance = opp.user('COMPLIANCE');
}, 240_000); // migrations on a busy machine are slow
afterAll(async () => {
  await opp?.stop();
}, 60_000);

interface Result {
  data?: any;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}
const code = (r: Result) => r.errors?.[0]?.extensions?.code;
const field = (r: Result) => r.errors?.[0]?.extensions?.field;

const sql = <T = any>(query: string, params: unknown[] = []): Promise<T[]> => opp.sql<T>(query, params);

/** Envelopes this subgraph staged in its outbox (what the relay publishes). */
async function outbox(type: string, where: (data: any) => boolean = () => true) {
  const rows = await sql<{ envelope: any }>('SELECT envelope FROM outbox WHERE type = ? ORDER BY created_at', [type]);
  return rows.map((r) => (typeof r.envelope === 'string' ? JSON.parse(r.envelope) : r.envelope)).filter((e) => where(e.data));
}

async function publishCustomerEvent<T extends 'customer.created' | 'customer.updated' | 'customer.deleted' | 'customer.restored' | 'customer.reassigned'>(
  type: T,
  customerId: string,
  data: EventData<T>,
  cause: { actorId: string | null; correlationId?: string } = { actorId: null },
) {
  return opp.publish(type, customerId, data, cause);
}

const customerData = (id: string, repId: string | null, name = 'Acme') => ({
  customerId: id,
  name,
  assignedRepId: repId,
  size: null,
  investmentProfile: null,
});

async function refOf(id: string) {
  const rows = await sql<{ name: string; assigned_rep_id: string | null; deleted: boolean }>('SELECT name, assigned_rep_id, deleted FROM customer_refs WHERE id = ?', [id]);
  return rows[0];
}

/** A customer as the customer subgraph would announce it; waits until the local directory has it. */
async function newCustomer(repId: string | null, name = 'Acme') {
  const id = randomUUID();
  await publishCustomerEvent('customer.created', id, customerData(id, repId, name));
  await eventually(() => refOf(id));
  return id;
}

async function deleteCustomer(id: string, repId: string | null, by: TestCaller) {
  const sagaId = randomUUID();
  await publishCustomerEvent('customer.deleted', id, { ...customerData(id, repId), sagaId, requestedBy: by.id }, { actorId: by.id, correlationId: sagaId });
  return sagaId;
}

const FIELDS = 'id title description amount status decisionComment createdAt decidedAt customer { id } requester { id } approver { id }';
const REQUEST = `mutation($input: RequestApprovalInput!) { requestApproval(input: $input) { ${FIELDS} } }`;
const APPROVE = `mutation($id: ID!, $comment: String) { approveRequest(id: $id, comment: $comment) { ${FIELDS} } }`;
const REJECT = `mutation($id: ID!, $comment: String) { rejectRequest(id: $id, comment: $comment) { ${FIELDS} } }`;
const RECALL = `mutation($id: ID!) { recallRequest(id: $id) { ${FIELDS} } }`;
const GET = `query($id: ID!) { approvalRequest(id: $id) { ${FIELDS} } }`;
const PENDING = `query($first: Int, $after: String) { pendingApprovals(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status requester { id } } } } }`;

async function request(user: TestCaller, customerId: string, title = 'Discount 10%', extra: Record<string, unknown> = {}) {
  const r = await user.gql(REQUEST, { input: { customerId, title, ...extra } });
  if (r.errors) throw new Error(`requestApproval failed: ${JSON.stringify(r.errors)}`);
  return r.data.requestApproval as { id: string; status: string };
}

/** SQL the outbox relay and the event consumer send on their own timers, not for a query. */
const BACKGROUND = /\b(outbox|inbox|pg_try_advisory_xact_lock)\b|^\s*(begin|commit|rollback|savepoint|release)\b/i;

/** A call straight to the subgraph, signed as the gateway would sign it for `user`. */
const direct = (user: TestCaller, query: string, variables: Record<string, unknown>): Promise<Result> => user.gql(query, variables);

test('lifecycle: request → approve, with the decision recorded and the events staged', async () => {
  const customerId = await newCustomer(sales.id, 'Lifecycle Ltd');
  const created = await sales.gql(REQUEST, { input: { customerId, title: '  Volume discount ', description: 'For 500 seats', amount: 1250.5 } });
  expect(created.errors).toBeUndefined();
  const req = created.data.requestApproval;
  expect(req).toMatchObject({
    title: 'Volume discount',
    description: 'For 500 seats',
    amount: 1250.5,
    status: 'PENDING',
    customer: { id: customerId },
    requester: { id: sales.id },
    approver: null,
    decidedAt: null,
    decisionComment: null,
  });

  // requester and approver are User references (auth resolves their name and role: e2e/domains.test.ts)
  const read = await sales.gql(`query($id: ID!) { approvalRequest(id: $id) { id requester { id } } }`, { id: req.id });
  expect(read.data.approvalRequest).toMatchObject({ id: req.id, requester: { id: sales.id } });

  const approved = await manager.gql(APPROVE, { id: req.id, comment: 'Go ahead' });
  expect(approved.errors).toBeUndefined();
  expect(approved.data.approveRequest).toMatchObject({ status: 'APPROVED', approver: { id: manager.id }, decisionComment: 'Go ahead' });
  expect(Date.parse(approved.data.approveRequest.decidedAt)).toBeGreaterThanOrEqual(Date.parse(req.createdAt));

  const again = await sales.gql(GET, { id: req.id });
  expect(again.data.approvalRequest).toMatchObject({ status: 'APPROVED', approver: { id: manager.id } });

  const [requested] = await outbox('approval.requested', (d) => d.requestId === req.id);
  expect(requested.data).toEqual({
    requestId: req.id,
    customerId,
    requesterId: sales.id,
    approverId: null,
    title: 'Volume discount',
    amount: 1250.5,
    status: 'PENDING',
    comment: null,
    requestedAt: req.createdAt,
    decidedAt: null,
  });
  expect(requested.actorId).toBe(sales.id);
  const decided = await outbox('approval.approved', (d) => d.requestId === req.id);
  expect(decided).toHaveLength(1);
  expect(decided[0].data).toMatchObject({ status: 'APPROVED', approverId: manager.id, comment: 'Go ahead', decidedAt: approved.data.approveRequest.decidedAt });
  expect(decided[0].actorId).toBe(manager.id);
});

test('lifecycle: reject, and recall by the requester', async () => {
  const customerId = await newCustomer(sales.id);
  const a = await request(sales, customerId, 'A');
  const rejected = await manager.gql(REJECT, { id: a.id, comment: 'Too much' });
  expect(rejected.data.rejectRequest).toMatchObject({ status: 'REJECTED', approver: { id: manager.id }, decisionComment: 'Too much' });
  expect(rejected.data.rejectRequest.decidedAt).toBeTruthy();
  expect(await outbox('approval.rejected', (d) => d.requestId === a.id)).toHaveLength(1);

  const b = await request(sales, customerId, 'B');
  const recalled = await sales.gql(RECALL, { id: b.id });
  expect(recalled.data.recallRequest).toMatchObject({ status: 'RECALLED', approver: null, decidedAt: null });
  const [ev] = await outbox('approval.recalled', (d) => d.requestId === b.id);
  expect(ev.data).toMatchObject({ status: 'RECALLED', requesterId: sales.id });
});

test('input validation names the field; customers must be known, alive and (for SALES) theirs', async () => {
  const customerId = await newCustomer(sales.id);
  const cases: [Record<string, unknown>, string][] = [
    [{ customerId, title: '' }, 'title'],
    [{ customerId, title: '   ' }, 'title'],
    [{ customerId, title: 'x'.repeat(201) }, 'title'],
    [{ customerId, title: 'ok', description: 'd'.repeat(5001) }, 'description'],
    [{ customerId, title: 'ok', amount: -0.01 }, 'amount'],
    // two approved amounts near Float's limit would make every sum over them overflow (the analytics reports)
    [{ customerId, title: 'ok', amount: 1e308 }, 'amount'],
    [{ customerId, title: 'ok', amount: 1e12 + 0.01 }, 'amount'],
    [{ customerId: 'not-an-id', title: 'ok' }, 'customerId'],
  ];
  for (const [input, name] of cases) {
    const r = await sales.gql(REQUEST, { input });
    expect(code(r)).toBe('BAD_USER_INPUT');
    expect(field(r)).toBe(name);
  }
  // edges of the ranges are fine
  const edge = await sales.gql(REQUEST, { input: { customerId, title: 't'.repeat(200), description: 'd'.repeat(5000), amount: 0 } });
  expect(edge.errors).toBeUndefined();
  expect(edge.data.requestApproval.amount).toBe(0);
  const largest = await sales.gql(REQUEST, { input: { customerId, title: 'ok', amount: 1e12 } });
  expect(largest.errors).toBeUndefined();
  expect(largest.data.requestApproval.amount).toBe(1e12);

  const unknown = await sales.gql(REQUEST, { input: { customerId: randomUUID(), title: 'ok' } });
  expect(code(unknown)).toBe('NOT_FOUND');
  expect(field(unknown)).toBe('customerId');

  // another rep's customer does not exist for a SALES user; a MANAGER may request for any customer
  const notMine = await otherSales.gql(REQUEST, { input: { customerId, title: 'ok' } });
  expect(code(notMine)).toBe('NOT_FOUND');
  expect(field(notMine)).toBe('customerId');
  const byManager = await manager.gql(REQUEST, { input: { customerId, title: 'ok' } });
  expect(byManager.errors).toBeUndefined();

  // COMPLIANCE writes nothing
  expect(code(await compliance.gql(REQUEST, { input: { customerId, title: 'ok' } }))).toBe('FORBIDDEN');

  // unauthenticated
  expect(code(await opp.call(null, REQUEST, { input: { customerId, title: 'ok' } }))).toBe('UNAUTHENTICATED');
});

test('forbidden moves: self-approval, SALES or COMPLIANCE deciding, recall by someone else', async () => {
  const customerId = await newCustomer(sales.id);
  const own = await request(manager, customerId, 'Manager own');
  const selfApprove = await manager.gql(APPROVE, { id: own.id });
  expect(code(selfApprove)).toBe('FORBIDDEN');
  expect(code(await manager.gql(REJECT, { id: own.id }))).toBe('FORBIDDEN');

  const req = await request(sales, customerId, 'Sales request');
  expect(code(await sales.gql(APPROVE, { id: req.id }))).toBe('FORBIDDEN'); // own + SALES
  expect(code(await otherSales.gql(APPROVE, { id: req.id }))).toBe('FORBIDDEN'); // SALES may not decide
  expect(code(await otherSales.gql(REJECT, { id: req.id }))).toBe('FORBIDDEN');
  expect(code(await compliance.gql(APPROVE, { id: req.id }))).toBe('FORBIDDEN');
  expect(code(await compliance.gql(RECALL, { id: req.id }))).toBe('FORBIDDEN');
  // a manager sees the request but is not its requester
  expect(code(await manager.gql(RECALL, { id: req.id }))).toBe('FORBIDDEN');
  // another SALES user cannot even see it: NOT_FOUND, nothing of its data
  const otherRecall = await otherSales.gql(RECALL, { id: req.id });
  expect(code(otherRecall)).toBe('NOT_FOUND');
  expect(otherRecall.data?.recallRequest ?? null).toBeNull();

  // none of that changed anything
  const still = await sales.gql(GET, { id: req.id });
  expect(still.data.approvalRequest).toMatchObject({ status: 'PENDING', approver: null });
  expect(await outbox('approval.approved', (d) => d.requestId === req.id || d.requestId === own.id)).toHaveLength(0);

  // an ADMIN may decide someone else's request
  const admin = opp.user('ADMIN');
  const byAdmin = await admin.gql(APPROVE, { id: own.id });
  expect(byAdmin.data.approveRequest).toMatchObject({ status: 'APPROVED', approver: { id: admin.id } });
  expect(code(await manager.gql(APPROVE, { id: randomUUID() }))).toBe('NOT_FOUND');
});

test('conflicts: only PENDING moves', async () => {
  const customerId = await newCustomer(sales.id);
  const a = await request(sales, customerId, 'A');
  expect((await manager.gql(APPROVE, { id: a.id })).errors).toBeUndefined();
  expect(code(await manager.gql(APPROVE, { id: a.id }))).toBe('CONFLICT'); // second decision
  expect(code(await otherManager.gql(REJECT, { id: a.id }))).toBe('CONFLICT');
  expect(code(await sales.gql(RECALL, { id: a.id }))).toBe('CONFLICT'); // recall after decision

  const b = await request(sales, customerId, 'B');
  expect((await manager.gql(REJECT, { id: b.id })).errors).toBeUndefined();
  expect(code(await sales.gql(RECALL, { id: b.id }))).toBe('CONFLICT');
  expect(code(await manager.gql(APPROVE, { id: b.id }))).toBe('CONFLICT');

  const c = await request(sales, customerId, 'C');
  expect((await sales.gql(RECALL, { id: c.id })).errors).toBeUndefined();
  expect(code(await sales.gql(RECALL, { id: c.id }))).toBe('CONFLICT');
  expect(code(await manager.gql(APPROVE, { id: c.id }))).toBe('CONFLICT');

  const after = await sales.gql(GET, { id: a.id });
  expect(after.data.approvalRequest).toMatchObject({ status: 'APPROVED', approver: { id: manager.id } });
  expect(await outbox('approval.rejected', (d) => d.requestId === a.id)).toHaveLength(0);
});

test('concurrent approve and reject: exactly one wins, the other is a CONFLICT', async () => {
  const customerId = await newCustomer(sales.id);
  for (let i = 0; i < 5; i++) {
    const req = await request(sales, customerId, `Race ${i}`);
    const [approve, reject] = await Promise.all([manager.gql(APPROVE, { id: req.id, comment: 'yes' }), otherManager.gql(REJECT, { id: req.id, comment: 'no' })]);
    const results = [approve, reject];
    const winners = results.filter((r) => !r.errors);
    const losers = results.filter((r) => r.errors);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(code(losers[0]!)).toBe('CONFLICT');
    const winnerStatus = approve.errors ? 'REJECTED' : 'APPROVED';
    const winnerId = approve.errors ? otherManager.id : manager.id;
    const final = await sales.gql(GET, { id: req.id });
    expect(final.data.approvalRequest).toMatchObject({ status: winnerStatus, approver: { id: winnerId }, decisionComment: approve.errors ? 'no' : 'yes' });
    const events = [...(await outbox('approval.approved', (d) => d.requestId === req.id)), ...(await outbox('approval.rejected', (d) => d.requestId === req.id))];
    expect(events).toHaveLength(1); // the loser's event rolled back with its update
    expect(events[0].data.status).toBe(winnerStatus);
  }
});

test('updateApprovalRequest: the requester only, PENDING only; changes staged as approval.updated', async () => {
  const UPDATE = `mutation($id: ID!, $input: UpdateApprovalRequestInput!) { updateApprovalRequest(id: $id, input: $input) { ${FIELDS} } }`;
  const customerId = await newCustomer(sales.id);
  const req = await request(sales, customerId, 'Draft', { description: 'first', amount: 10 });
  expect(code(await otherSales.gql(UPDATE, { id: req.id, input: { amount: 1 } }))).toBe('NOT_FOUND');
  expect(code(await manager.gql(UPDATE, { id: req.id, input: { amount: 1 } }))).toBe('FORBIDDEN');
  expect(code(await compliance.gql(UPDATE, { id: req.id, input: { amount: 1 } }))).toBe('FORBIDDEN');
  const long = await sales.gql(UPDATE, { id: req.id, input: { title: 'x'.repeat(201) } });
  expect([code(long), field(long)]).toEqual(['BAD_USER_INPUT', 'title']);
  const huge = await sales.gql(UPDATE, { id: req.id, input: { amount: 1e308 } });
  expect([code(huge), field(huge)]).toEqual(['BAD_USER_INPUT', 'amount']);
  // nothing changed: no event
  expect((await sales.gql(UPDATE, { id: req.id, input: { title: 'Draft', amount: 10 } })).data.updateApprovalRequest).toMatchObject({ title: 'Draft', amount: 10 });
  expect(await outbox('approval.updated', (d) => d.requestId === req.id)).toEqual([]);
  const r = await sales.gql(UPDATE, { id: req.id, input: { title: 'Final', description: null, amount: null } });
  expect(r.data.updateApprovalRequest).toMatchObject({ title: 'Final', description: null, amount: null, status: 'PENDING' });
  const [event] = await outbox('approval.updated', (d) => d.requestId === req.id);
  expect(event.data).toMatchObject({ title: 'Final', amount: null, status: 'PENDING', changes: ['title', 'description', 'amount'] });
  await sales.gql(RECALL, { id: req.id });
  expect(code(await sales.gql(UPDATE, { id: req.id, input: { title: 'Too late' } }))).toBe('CONFLICT');
  expect((await sales.gql(GET, { id: req.id })).data.approvalRequest.title).toBe('Final');
});

test("updateApprovalRequest racing a decision: the decision's event always carries the amount that was decided", async () => {
  const UPDATE = 'mutation($id: ID!, $input: UpdateApprovalRequestInput!) { updateApprovalRequest(id: $id, input: $input) { amount } }';
  const customerId = await newCustomer(sales.id);
  for (let i = 0; i < 5; i++) {
    const req = await request(sales, customerId, `Race ${i}`, { amount: 100 });
    const [update, approve] = await Promise.all([sales.gql(UPDATE, { id: req.id, input: { amount: 200 } }), manager.gql(APPROVE, { id: req.id })]);
    // whichever lost the race is a CONFLICT and changed nothing (both may succeed when they did not overlap: update, then approve)
    for (const r of [update, approve]) if (r.errors) expect(code(r)).toBe('CONFLICT');
    const final = (await sales.gql(GET, { id: req.id })).data.approvalRequest;
    expect(final.amount).toBe(update.errors ? 100 : 200);
    const decided = await outbox('approval.approved', (d) => d.requestId === req.id);
    if (approve.errors) {
      expect(decided).toEqual([]);
      expect(final.status).toBe('PENDING');
    } else {
      expect(decided).toHaveLength(1);
      expect(decided[0].data.amount).toBe(final.amount);
    }
  }
});

test('pendingApprovals: MANAGER, ADMIN and COMPLIANCE see every pending request; SALES their own', async () => {
  const s1 = opp.user('SALES');
  const s2 = opp.user('SALES');
  const c1 = await newCustomer(s1.id);
  const c2 = await newCustomer(s2.id);
  const mine = [await request(s1, c1, 'p1'), await request(s1, c1, 'p2'), await request(s1, c1, 'p3')];
  const decided = await request(s1, c1, 'decided');
  await manager.gql(APPROVE, { id: decided.id });
  const theirs = await request(s2, c2, 'theirs');

  const ids = (r: Result) => r.data.pendingApprovals.edges.map((e: { node: { id: string } }) => e.node.id) as string[];
  const own = await s1.gql(PENDING, { first: 100 });
  expect(own.data.pendingApprovals.totalCount).toBe(3);
  expect(ids(own).sort()).toEqual(mine.map((m) => m.id).sort());
  expect(own.data.pendingApprovals.edges.every((e: any) => e.node.status === 'PENDING' && e.node.requester.id === s1.id)).toBe(true);

  const admin = opp.user('ADMIN');
  for (const who of [manager, admin, compliance]) {
    const all = await who.gql(PENDING, { first: 100 });
    expect(all.errors).toBeUndefined();
    expect(ids(all)).toEqual(expect.arrayContaining([...mine.map((m) => m.id), theirs.id]));
    expect(ids(all)).not.toContain(decided.id);
  }

  // newest first, opaque cursors, first/after
  const page1 = await s1.gql(PENDING, { first: 2 });
  expect(page1.data.pendingApprovals.pageInfo.hasNextPage).toBe(true);
  expect(ids(page1)).toEqual([mine[2]!.id, mine[1]!.id]);
  const page2 = await s1.gql(PENDING, { first: 2, after: page1.data.pendingApprovals.pageInfo.endCursor });
  expect(ids(page2)).toEqual([mine[0]!.id]);
  expect(page2.data.pendingApprovals.pageInfo.hasNextPage).toBe(false);
  expect(code(await s1.gql(PENDING, { first: 101 }))).toBe('BAD_USER_INPUT');
  expect(code(await s1.gql(PENDING, { after: 'garbage' }))).toBe('BAD_USER_INPUT');

  // someone else's request is null for a SALES user, visible to COMPLIANCE
  expect((await s2.gql(GET, { id: mine[0]!.id })).data.approvalRequest).toBeNull();
  expect((await compliance.gql(GET, { id: mine[0]!.id })).data.approvalRequest.id).toBe(mine[0]!.id);
  expect((await s1.gql(GET, { id: 'nope' })).data.approvalRequest).toBeNull();
});

test('_entities: ApprovalRequest and Customer.approvalRequests show a SALES user only their own', async () => {
  const s1 = opp.user('SALES');
  const s2 = opp.user('SALES');
  const customerId = await newCustomer(s1.id);
  const req = await request(s1, customerId, 'Entity');
  const byManager = await request(manager, customerId, 'Manager on same customer');
  await otherManager.gql(APPROVE, { id: byManager.id });

  const ENTITY = `query($r: [_Any!]!) { _entities(representations: $r) { ... on ApprovalRequest { id title status requester { id } } } }`;
  const rep = [{ __typename: 'ApprovalRequest', id: req.id }];
  const asOwner = await direct(s1, ENTITY, { r: rep });
  expect(asOwner.data._entities).toEqual([{ id: req.id, title: 'Entity', status: 'PENDING', requester: { id: s1.id } }]);
  const asOther = await direct(s2, ENTITY, { r: rep });
  expect(asOther.errors).toBeUndefined();
  expect(asOther.data._entities).toEqual([null]);
  expect((await direct(compliance, ENTITY, { r: rep })).data._entities[0].id).toBe(req.id);

  const CUSTOMER = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id approvalRequests { id title } approved: approvalRequests(status: APPROVED) { id } } } }`;
  const crep = [{ __typename: 'Customer', id: customerId }];
  const ownerView = await direct(s1, CUSTOMER, { r: crep });
  expect(ownerView.data._entities[0]).toEqual({ id: customerId, approvalRequests: [{ id: req.id, title: 'Entity' }], approved: [] });
  const otherView = await direct(s2, CUSTOMER, { r: crep });
  expect(otherView.data._entities[0]).toEqual({ id: customerId, approvalRequests: [], approved: [] });
  const managerView = await direct(manager, CUSTOMER, { r: crep });
  expect(managerView.data._entities[0].approvalRequests.map((r: { id: string }) => r.id)).toEqual([byManager.id, req.id]);
  expect(managerView.data._entities[0].approved).toEqual([{ id: byManager.id }]);

  // an unsigned direct call is refused
  const unsigned = await fetch(opp.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: ENTITY, variables: { r: rep } }),
  });
  expect(unsigned.status).toBe(401);
});

test('Customer.approvalRequests is batched: the same statement count for 5 and 50 customers', async () => {
  const s1 = opp.user('SALES');
  const customers: string[] = [];
  for (let i = 0; i < 50; i++) customers.push(await newCustomer(s1.id, `Batch ${i}`));
  for (const c of customers.slice(0, 8)) await request(s1, c, `Batch request ${c.slice(0, 4)}`);
  const QUERY = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id approvalRequests { id status requester { id } } } } }`;
  const db = opp.db;
  const knex = db.orm.em.getConnection().getKnex();
  /**
   * Statements a query sends: db.statementCount() also counts the outbox relay's and the consumer's
   * polling on their own timers, so we take (a) the fewest raw statements over a few runs and
   * (b) the statements seen during one run leaving out that background SQL.
   */
  const measure = async (ids: string[], who: TestCaller) => {
    let fewestRaw = Infinity;
    let own = 0;
    let data: { approvalRequests: unknown[] }[] = [];
    for (let i = 0; i < 3; i++) {
      let counted = 0;
      const listener = (q: { sql?: string }) => {
        if (!BACKGROUND.test(q.sql ?? '')) counted += 1;
      };
      knex.on('query', listener);
      const before = db.statementCount();
      const r = await direct(who, QUERY, { r: ids.map((id) => ({ __typename: 'Customer', id })) });
      fewestRaw = Math.min(fewestRaw, db.statementCount() - before);
      knex.removeListener('query', listener);
      own = counted;
      expect(r.errors).toBeUndefined();
      expect(r.data._entities).toHaveLength(ids.length);
      data = r.data._entities;
    }
    return { raw: fewestRaw, own, data };
  };
  const five = await measure(customers.slice(0, 5), s1);
  const fifty = await measure(customers, s1);
  expect(five.data.filter((c) => c.approvalRequests.length > 0)).toHaveLength(5);
  expect(fifty.data.filter((c) => c.approvalRequests.length > 0)).toHaveLength(8);
  expect(fifty.own).toBe(five.own);
  expect(five.own).toBe(1);
  const fiftyAsManager = await measure(customers, manager);
  expect(fiftyAsManager.own).toBe(1);

  console.log(`Customer.approvalRequests statements (fewest raw / own): 5 customers → ${five.raw}/${five.own}, 50 → ${fifty.raw}/${fifty.own}`);

  // ApprovalRequest references are batched too
  const ids = (await sql<{ id: string }>('SELECT id FROM approval_requests LIMIT 30')).map((r) => r.id);
  let counted = 0;
  const listener = (q: { sql?: string }) => {
    if (!BACKGROUND.test(q.sql ?? '')) counted += 1;
  };
  knex.on('query', listener);
  const r = await direct(manager, `query($r: [_Any!]!) { _entities(representations: $r) { ... on ApprovalRequest { id } } }`, {
    r: ids.map((id) => ({ __typename: 'ApprovalRequest', id })),
  });
  knex.removeListener('query', listener);
  expect(r.data._entities).toHaveLength(ids.length);
  expect(counted).toBe(1);
});

test('customer directory follows customer events: updated, reassigned, deleted, restored', async () => {
  const s1 = opp.user('SALES');
  const s2 = opp.user('SALES');
  const id = await newCustomer(s1.id, 'Before');
  await publishCustomerEvent('customer.updated', id, { ...customerData(id, s1.id, 'After'), changes: ['name'] });
  await eventually(async () => (await refOf(id))?.name === 'After');

  await publishCustomerEvent('customer.reassigned', id, { ...customerData(id, s2.id, 'After'), fromRepId: s1.id, sagaId: null });
  await eventually(async () => (await refOf(id))?.assigned_rep_id === s2.id);
  expect(code(await s1.gql(REQUEST, { input: { customerId: id, title: 'x' } }))).toBe('NOT_FOUND');
  expect((await s2.gql(REQUEST, { input: { customerId: id, title: 'x' } })).errors).toBeUndefined();

  const sagaId = await deleteCustomer(id, s2.id, manager);
  await eventually(async () => (await refOf(id))?.deleted === true);
  const deleted = await manager.gql(REQUEST, { input: { customerId: id, title: 'x' } });
  expect(code(deleted)).toBe('NOT_FOUND');
  expect(field(deleted)).toBe('customerId');

  await publishCustomerEvent('customer.restored', id, { ...customerData(id, s2.id, 'After'), sagaId }, { actorId: null, correlationId: sagaId });
  await eventually(async () => (await refOf(id))?.deleted === false);
  expect((await s2.gql(REQUEST, { input: { customerId: id, title: 'y' } })).errors).toBeUndefined();
});

test('customer-deletion saga: pending requests are cancelled and the step is DONE', async () => {
  const customerId = await newCustomer(sales.id);
  const p1 = await request(sales, customerId, 'cancel me 1');
  const p2 = await request(sales, customerId, 'cancel me 2');
  const rejected = await request(sales, customerId, 'rejected stays');
  await manager.gql(REJECT, { id: rejected.id });
  // an approval older than 30 days does not block the deletion
  const old = await request(sales, customerId, 'old approval');
  await manager.gql(APPROVE, { id: old.id });
  await sql(`UPDATE approval_requests SET decided_at = now() - interval '40 days' WHERE id = ?`, [old.id]);
  const otherCustomer = await newCustomer(sales.id);
  const untouched = await request(sales, otherCustomer, 'other customer');

  const sagaId = await deleteCustomer(customerId, sales.id, manager);
  const [step] = await eventually(async () => {
    const steps = await outbox('opportunity.saga_step', (d) => d.sagaId === sagaId);
    return steps.length > 0 ? steps : null;
  });
  expect(step.data).toMatchObject({
    sagaType: 'customer-deletion',
    subjectId: customerId,
    step: 'opportunity.cancel-requests',
    status: 'DONE',
    detail: '2 pending requests cancelled',
    ends: null,
  });
  expect(step.correlationId).toBe(sagaId);
  expect(step.aggregateId).toBe(sagaId);

  for (const p of [p1, p2]) expect((await sales.gql(GET, { id: p.id })).data.approvalRequest.status).toBe('CANCELLED');
  expect((await sales.gql(GET, { id: rejected.id })).data.approvalRequest.status).toBe('REJECTED');
  expect((await sales.gql(GET, { id: old.id })).data.approvalRequest.status).toBe('APPROVED');
  expect((await sales.gql(GET, { id: untouched.id })).data.approvalRequest.status).toBe('PENDING');
  const cancelled = await outbox('approval.cancelled', (d) => d.customerId === customerId);
  expect(cancelled.map((e) => e.data.requestId).sort()).toEqual([p1.id, p2.id].sort());
  expect(cancelled.every((e) => e.data.reason === 'customer deleted' && e.data.status === 'CANCELLED' && e.correlationId === sagaId)).toBe(true);
  // a cancelled request cannot be decided or recalled
  expect(code(await manager.gql(APPROVE, { id: p1.id }))).toBe('CONFLICT');
  expect(code(await sales.gql(RECALL, { id: p2.id }))).toBe('CONFLICT');
});

test('customer-deletion saga: a request APPROVED within 30 days refuses the step and changes nothing', async () => {
  const customerId = await newCustomer(sales.id);
  const approved = await request(sales, customerId, 'Big deal', { amount: 90000 });
  await manager.gql(APPROVE, { id: approved.id, comment: 'ok' });
  await sql(`UPDATE approval_requests SET decided_at = now() - interval '5 days' WHERE id = ?`, [approved.id]);
  const pending = await request(sales, customerId, 'still pending');

  const sagaId = await deleteCustomer(customerId, sales.id, manager);
  const [step] = await eventually(async () => {
    const steps = await outbox('opportunity.saga_step', (d) => d.sagaId === sagaId);
    return steps.length > 0 ? steps : null;
  });
  expect(step.data).toMatchObject({ sagaType: 'customer-deletion', subjectId: customerId, step: 'opportunity.cancel-requests', status: 'REFUSED', ends: null });
  expect(step.data.detail).toContain(approved.id);
  expect(step.data.detail).toContain('30 days');
  expect((await sales.gql(GET, { id: pending.id })).data.approvalRequest.status).toBe('PENDING');
  expect((await sales.gql(GET, { id: approved.id })).data.approvalRequest.status).toBe('APPROVED');
  expect(await outbox('approval.cancelled', (d) => d.customerId === customerId)).toHaveLength(0);
});

test("user-deletion saga: the deleted user's pending requests are cancelled, step DONE with the saga id", async () => {
  const doomed = opp.user('SALES');
  const customerId = await newCustomer(doomed.id);
  const p1 = await request(doomed, customerId, 'u1');
  const p2 = await request(doomed, customerId, 'u2');
  const decided = await request(doomed, customerId, 'u3');
  await manager.gql(APPROVE, { id: decided.id });
  const someoneElse = await request(manager, customerId, 'manager pending');

  const admin = opp.user('ADMIN');
  // user.deleted as auth publishes it when the ADMIN deletes the user
  const sagaId = randomUUID();
  await opp.publish('user.deleted', doomed.id, { ...userData(doomed, { active: false, tokenVersion: 1 }), sagaId }, { actorId: admin.id, correlationId: sagaId });
  const [step] = await eventually(async () => {
    const steps = await outbox('opportunity.saga_step', (d) => d.sagaId === sagaId);
    return steps.length > 0 ? steps : null;
  });
  expect(step.data).toMatchObject({ sagaType: 'user-deletion', subjectId: doomed.id, step: 'opportunity.cancel-requests', status: 'DONE', detail: '2 pending requests cancelled' });
  expect(step.correlationId).toBe(sagaId);

  const status = async (id: string) => (await manager.gql(GET, { id })).data.approvalRequest.status;
  expect(await status(p1.id)).toBe('CANCELLED');
  expect(await status(p2.id)).toBe('CANCELLED');
  expect(await status(decided.id)).toBe('APPROVED');
  expect(await status(someoneElse.id)).toBe('PENDING');
  const cancelled = await outbox('approval.cancelled', (d) => d.requesterId === doomed.id);
  expect(cancelled).toHaveLength(2);
  expect(cancelled.every((e) => e.data.reason === 'requester deleted' && e.correlationId === sagaId)).toBe(true);
  const pendingIds = (await manager.gql(PENDING, { first: 100 })).data.pendingApprovals.edges.map((e: any) => e.node.id);
  expect(pendingIds).not.toContain(p1.id);
});

// Real Postgres only (embedded PGlite runs one session: nothing can wait on a lock there).
const onPostgres = process.env.POSTGRES_URL ? test : test.skip;

onPostgres('one lock order: a decision and the user-deletion cancel on the same request never deadlock (row, then version counter)', async () => {
  const requester = opp.user('SALES');
  const customerId = await newCustomer(requester.id, 'Lock Order Ltd');
  const req = await request(requester, customerId, 'lock order');
  const deadlocks = async () => Number((await sql<{ n: string }>('SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()'))[0]!.n);
  const waiting = async () =>
    Number((await sql<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0]!.n);
  const before = await deadlocks();

  // Hold the request's version counter (what an outbox insert takes), so both writers stop at their second lock.
  const holder = opp.runtime.fork();
  await holder.begin();
  try {
    await holder.execute(`SELECT 1 FROM aggregate_versions WHERE topic = 'opportunity.events' AND key = ? FOR UPDATE`, [req.id]);
    const approved = manager.gql(APPROVE, { id: req.id });
    await eventually(async () => (await waiting()) >= 1, { timeoutMs: 30_000 });
    const sagaId = randomUUID();
    await opp.publish('user.deleted', requester.id, { ...userData(requester, { active: false, tokenVersion: 1 }), sagaId }, { actorId: null, correlationId: sagaId });
    await eventually(async () => (await waiting()) >= 2, { timeoutMs: 30_000 });
    await holder.rollback();
    const answer = await approved;
    expect(answer.errors).toBeUndefined();
    expect(answer.data.approveRequest.status).toBe('APPROVED');
    const [step] = await eventually(
      async () => {
        const steps = await outbox('opportunity.saga_step', (d) => d.sagaId === sagaId);
        return steps.length > 0 ? steps : null;
      },
      { timeoutMs: 30_000 },
    );
    // the decision committed first (it held the row); the cancel found nothing PENDING
    expect(step.data).toMatchObject({ status: 'DONE', detail: '0 pending requests cancelled' });
    expect(await outbox('approval.cancelled', (d) => d.requestId === req.id)).toHaveLength(0);
    expect(await outbox('approval.approved', (d) => d.requestId === req.id)).toHaveLength(1);
    expect(await deadlocks()).toBe(before);
  } finally {
    await holder.rollback().catch(() => undefined);
  }
});
