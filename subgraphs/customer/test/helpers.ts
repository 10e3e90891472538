import { randomUUID } from 'node:crypto';
import { eventually, userData, type GraphQLResult, type TestCaller, type TestSubgraph } from '@crm/testing';
import { type EventData } from '@crm/events';
import { type Role } from '@crm/runtime';

/** The first error's extensions.code of a result. */
export const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
export const field = (r: { errors?: { extensions?: Record<string, unknown> }[] }) => r.errors?.[0]?.extensions?.field;

export const CUSTOMER_FIELDS = 'id name email phone industry size investmentProfile riskTolerance createdAt updatedAt assignedRep { id }';
export const CREATE = `mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { ${CUSTOMER_FIELDS} } }`;
export const UPDATE = `mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) { ${CUSTOMER_FIELDS} } }`;
export const ASSIGN = `mutation($id: ID!, $repId: ID!) { assignCustomer(id: $id, repId: $repId) { id assignedRep { id } } }`;
export const DELETE = `mutation($id: ID!) { deleteCustomer(id: $id) { id } }`;
export const GET = `query($id: ID!) { customer(id: $id) { ${CUSTOMER_FIELDS} } }`;
export const LIST = `query($search: String, $rep: ID, $first: Int, $after: String) {
  customers(search: $search, assignedRepId: $rep, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name email phone assignedRep { id } } }
  }
}`;

export const ids = (r: GraphQLResult) => (r.data?.customers?.edges ?? []).map((e: { node: { id: string } }) => e.node.id) as string[];

/** Creates a customer and fails loudly on errors. */
export async function create(user: Pick<TestCaller, 'gql'>, input: Record<string, unknown>) {
  const r = await user.gql(CREATE, { input });
  if (r.errors) throw new Error(`createCustomer failed: ${JSON.stringify(r.errors)}`);
  return r.data.createCustomer as { id: string; name: string; assignedRep: { id: string } | null; [k: string]: unknown };
}

/** A MANAGER/ADMIN create for a rep: the rep directory fills from user.created, so wait for it. */
export function createFor(user: Pick<TestCaller, 'gql'>, repId: string, input: Record<string, unknown>) {
  return eventually(async () => {
    const r = await user.gql(CREATE, { input: { ...input, assignedRepId: repId } });
    if (r.errors) throw new Error(JSON.stringify(r.errors));
    return r.data.createCustomer as { id: string; name: string; assignedRep: { id: string } | null };
  });
}

/** Requests caused statements in the customer subgraph while `run` ran (the kit leaves background work out of statementCount()). */
export async function countStatements(customer: TestSubgraph, run: () => Promise<void>): Promise<number> {
  const before = customer.db.statementCount();
  await run();
  return customer.db.statementCount() - before;
}

/** A made-up user that auth announced (user.created), once the rep directory has it. */
export async function newUser(customer: TestSubgraph, role: Role = 'SALES', name?: string): Promise<TestCaller> {
  const user = customer.user(role, name);
  await customer.publish('user.created', user.id, userData(user), { actorId: user.id });
  await eventually(async () => (await customer.sql('SELECT 1 FROM reps WHERE id = ?', [user.id])).length === 1);
  return user;
}

/** A change of a user as auth publishes it (user.updated), once the rep directory shows it. */
export async function updateUser(customer: TestSubgraph, user: TestCaller, changes: Partial<EventData<'user.created'>>): Promise<void> {
  const data = userData(user, changes);
  await customer.publish('user.updated', user.id, { ...data, changes: Object.keys(changes) }, { actorId: null });
  await eventually(async () => {
    const [row] = await customer.sql<{ active: boolean; approved: boolean }>('SELECT active, approved FROM reps WHERE id = ?', [user.id]);
    return row?.active === (data.role === 'SALES' && data.active) && row.approved === data.approved;
  });
}

/** An ADMIN deletes `user` in auth: user.deleted starts the user-deletion saga; returns the saga id. */
export async function deleteUser(customer: TestSubgraph, admin: TestCaller, user: TestCaller, changes: Partial<EventData<'user.created'>> = {}): Promise<string> {
  const sagaId = randomUUID();
  await customer.publish('user.deleted', user.id, { ...userData(user, { active: false, tokenVersion: 1, ...changes }), sagaId }, { actorId: admin.id, correlationId: sagaId });
  return sagaId;
}
