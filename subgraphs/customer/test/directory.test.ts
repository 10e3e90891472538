/**
 * The event side of the customer subgraph: the rep directory fed by user.* events, step 2 of the
 * user-deletion saga (reassignment to the least-loaded rep), and the compensation of a refused
 * customer-deletion saga. The customer subgraph alone: user.* and opportunity.saga_step arrive as
 * auth and opportunity publish them.
 */
import { randomUUID } from 'node:crypto';
import { eventually, startTestSubgraph, userData, type TestCaller, type TestSubgraph } from '@crm/testing';
import { customerSubgraph } from '../src';
import { ASSIGN, CREATE, DELETE, GET, LIST, code, create, deleteUser, field, ids, newUser, updateUser } from './helpers';

let customer: TestSubgraph;
let admin: TestCaller;

beforeAll(async () => {
  customer = await startTestSubgraph(customerSubgraph);
  admin = await newUser(customer, 'ADMIN');
}, 240_000); // a subgraph starts in seconds, slower on a loaded machine
afterAll(async () => {
  await customer?.stop();
});

interface OutboxRow {
  type: string;
  key: string;
  envelope: { correlationId: string; causationId: string | null; data: Record<string, any> };
}
const outbox = (where: string, params: unknown[]) =>
  customer.runtime.fork().execute<OutboxRow[]>(`SELECT type, key, envelope FROM outbox WHERE ${where} ORDER BY created_at, id`, params);

const repOf = async (viewer: TestCaller, id: string) =>
  ((await viewer.gql(`query($id: ID!) { customer(id: $id) { assignedRep { id } } }`, { id })).data.customer?.assignedRep?.id ?? null) as string | null;

describe('user-deletion saga, step 2', () => {
  // Runs first, while the only SALES users in the directory are the ones it makes.
  test("a deleted rep's customers go to the least-loaded other rep, then unassigned when none is left", async () => {
    const ann = await newUser(customer, 'SALES', 'Ann Leaving');
    const ben = await newUser(customer, 'SALES', 'Ben Staying');
    // only reps an ADMIN or MANAGER approved receive other reps' customers
    await updateUser(customer, ben, { approved: true });
    const annCustomers = [await create(ann, { name: 'Ann 1' }), await create(ann, { name: 'Ann 2' }), await create(ann, { name: 'Ann 3' })];
    const benCustomer = await create(ben, { name: 'Ben 1' });

    const sagaId = await deleteUser(customer, admin, ann);
    await eventually(async () => {
      for (const c of annCustomers) if ((await repOf(admin, c.id)) !== ben.id) return false;
      return true;
    });
    // Ben sees them now
    const list = await ben.gql(LIST, { first: 100 });
    expect(ids(list).sort()).toEqual([...annCustomers.map((c) => c.id), benCustomer.id].sort());

    const reassigned = await outbox(`type = 'customer.reassigned' AND envelope->'data'->>'sagaId' = ?`, [sagaId]);
    expect(reassigned.map((r) => r.key).sort()).toEqual(annCustomers.map((c) => c.id).sort());
    for (const r of reassigned) {
      expect(r.envelope.data).toMatchObject({ fromRepId: ann.id, assignedRepId: ben.id, sagaId });
      expect(r.envelope.correlationId).toBe(sagaId);
    }
    const [step] = await outbox(`type = 'customer.saga_step' AND key = ?`, [sagaId]);
    expect(step!.envelope.data).toMatchObject({
      sagaId,
      sagaType: 'user-deletion',
      subjectId: ann.id,
      step: 'customer.reassign-customers',
      status: 'DONE',
      detail: '3 customers reassigned',
    });

    // Ann is out of the directory: a MANAGER can no longer assign to her
    const manager = await newUser(customer, 'MANAGER');
    const toAnn = await manager.gql(ASSIGN, { id: benCustomer.id, repId: ann.id });
    expect(field(toAnn)).toBe('repId');

    // Now Ben goes too, and no SALES rep is left: his four customers become unassigned
    const saga2 = await deleteUser(customer, admin, ben, { approved: true });
    await eventually(async () => {
      for (const c of [...annCustomers, benCustomer]) if ((await repOf(admin, c.id)) !== null) return false;
      return true;
    });
    const [step2] = await outbox(`type = 'customer.saga_step' AND key = ?`, [saga2]);
    expect(step2!.envelope.data).toMatchObject({ status: 'DONE', step: 'customer.reassign-customers', detail: expect.stringMatching(/^0 customers reassigned/) });
    expect(await outbox(`type = 'customer.reassigned' AND envelope->'data'->>'sagaId' = ?`, [saga2])).toHaveLength(4);
    const unassigned = await admin.gql(LIST, { search: 'Ann ', first: 100 });
    expect(unassigned.data.customers.edges.every((e: { node: { assignedRep: unknown } }) => e.node.assignedRep === null)).toBe(true);
  });

  test('least-loaded: customers are spread over the other reps by their load, ties to the oldest', async () => {
    const leaving = await newUser(customer, 'SALES', 'Leaving Rep');
    const busy = await newUser(customer, 'SALES', 'Busy Rep');
    const idle = await newUser(customer, 'SALES', 'Idle Rep');
    for (const rep of [busy, idle]) await updateUser(customer, rep, { approved: true });
    await create(busy, { name: 'Busy 1' });
    await create(busy, { name: 'Busy 2' });
    const mine: { id: string }[] = [];
    for (let i = 0; i < 4; i++) mine.push(await create(leaving, { name: `Spread ${i}` }));
    await deleteUser(customer, admin, leaving);
    // idle (0) takes two, then busy and idle alternate at 2 each → idle 3, busy 1 (ties go to busy, the older rep)
    const owners = await eventually(async () => {
      const got = await Promise.all(mine.map((c) => repOf(admin, c.id)));
      return got.every((r) => r !== null && r !== leaving.id) ? got : false;
    });
    expect(owners.filter((o) => o === idle.id)).toHaveLength(3);
    expect(owners.filter((o) => o === busy.id)).toHaveLength(1);
  });
});

describe('rep directory', () => {
  test('new SALES users join the directory; a role change takes them out', async () => {
    const manager = await newUser(customer, 'MANAGER');
    const rep = await newUser(customer, 'SALES', 'Directory Rep');
    // eventually assignable (user.created reached the directory)
    const c = await eventually(async () => {
      const r = await manager.gql(CREATE, { input: { name: 'Dir Co', assignedRepId: rep.id } });
      return r.errors ? false : (r.data.createCustomer as { id: string });
    });
    await customer.publish('user.updated', rep.id, { ...userData(rep, { role: 'MANAGER' }), changes: ['role'] }, { actorId: admin.id });
    await eventually(async () => {
      const r = await manager.gql(CREATE, { input: { name: 'Dir Co 2', assignedRepId: rep.id } });
      return code(r) === 'BAD_USER_INPUT' && field(r) === 'assignedRepId';
    });
    const other = await newUser(customer, 'SALES');
    await eventually(async () => !(await manager.gql(ASSIGN, { id: c.id, repId: other.id })).errors);
    expect(code(await manager.gql(ASSIGN, { id: c.id, repId: rep.id }))).toBe('BAD_USER_INPUT');
  });

  test('a SALES user the directory does not know yet may still create for themselves', async () => {
    // A signed identity of a SALES user whose user.created has not arrived (here: never will).
    const ghost = { userId: randomUUID(), role: 'SALES' as const, email: 'ghost@test.local' };
    const r = await customer.call(ghost, `mutation { createCustomer(input: { name: "Early Bird" }) { id name assignedRep { id } } }`);
    expect(r.errors).toBeUndefined();
    expect(r.data.createCustomer).toMatchObject({ name: 'Early Bird', assignedRep: { id: ghost.userId } });
    const again = await customer.call(ghost, `mutation { createCustomer(input: { name: "Second" }) { id } }`);
    expect(again.errors).toBeUndefined();
    // ...but a deactivated SALES user (still holding an access token) may not
    const gone = await newUser(customer, 'SALES');
    await eventually(async () => !(await gone.gql(CREATE, { input: { name: 'Before' } })).errors);
    await deleteUser(customer, admin, gone);
    // (the gateway may already refuse the token of a deleted user; the subgraph refuses the identity too)
    await eventually(async () => code(await gone.gql(CREATE, { input: { name: 'After' } })) === 'FORBIDDEN');
  });
});

describe('customer-deletion saga compensation', () => {
  /** opportunity.saga_step REFUSED, as the opportunity subgraph publishes it. */
  const refuse = (sagaId: string, customerId: string) =>
    customer.publish(
      'opportunity.saga_step',
      sagaId,
      {
        sagaId,
        sagaType: 'customer-deletion',
        subjectId: customerId,
        step: 'opportunity.cancel-requests',
        status: 'REFUSED',
        detail: 'customer has an APPROVED request from the last 30 days',
        ends: null,
      },
      { actorId: null, correlationId: sagaId },
    );

  test('opportunity refuses → the customer is restored, customer.restored and customer.restore COMPENSATED (once)', async () => {
    const manager = await newUser(customer, 'MANAGER');
    const rep = await newUser(customer, 'SALES', 'Restore Rep');
    const c = await create(rep, { name: 'Phoenix Ltd' });
    const del = await manager.gql(DELETE, { id: c.id });
    const sagaId = del.data.deleteCustomer.id as string;
    expect((await rep.gql(GET, { id: c.id })).data.customer).toBeNull();

    const env = await refuse(sagaId, c.id);
    await customer.deliver(env); // redelivery: no second effect
    await eventually(async () => (await rep.gql(GET, { id: c.id })).data.customer?.id === c.id);
    expect((await rep.gql(GET, { id: c.id })).data.customer).toMatchObject({ name: 'Phoenix Ltd', assignedRep: { id: rep.id } });

    await eventually(async () => (await outbox(`type = 'customer.saga_step' AND key = ? AND envelope->'data'->>'step' = 'customer.restore'`, [sagaId])).length === 1);
    const restored = await outbox(`type = 'customer.restored' AND key = ?`, [c.id]);
    expect(restored).toHaveLength(1);
    expect(restored[0]!.envelope).toMatchObject({ correlationId: sagaId, causationId: env.id, data: { customerId: c.id, sagaId } });
    const [step] = await outbox(`type = 'customer.saga_step' AND key = ? AND envelope->'data'->>'step' = 'customer.restore'`, [sagaId]);
    expect(step!.envelope.data).toMatchObject({ sagaId, sagaType: 'customer-deletion', subjectId: c.id, status: 'COMPENSATED' });

    // a refusal for some other saga restores nothing
    const c2 = await create(rep, { name: 'Stays Deleted' });
    await manager.gql(DELETE, { id: c2.id });
    const stray = await refuse(randomUUID(), c2.id);
    await eventually(async () => (await customer.sql(`SELECT 1 FROM inbox WHERE event_id = ?`, [stray.id])).length === 1);
    expect((await rep.gql(GET, { id: c2.id })).data.customer).toBeNull();
  });
});
