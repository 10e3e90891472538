import { eventually, type Identity } from '@crm/kit';
import type { GraphQLResult, TestStack, TestUser } from '@crm/platform';

export { errorCode as code, identityOf } from '@crm/platform';
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
export async function create(user: TestUser, input: Record<string, unknown>) {
  const r = await user.gql(CREATE, { input });
  if (r.errors) throw new Error(`createCustomer failed: ${JSON.stringify(r.errors)}`);
  return r.data.createCustomer as { id: string; name: string; assignedRep: { id: string } | null; [k: string]: unknown };
}

/** A MANAGER/ADMIN create for a rep: the rep directory fills from user.created, so wait for it. */
export function createFor(user: TestUser, repId: string, input: Record<string, unknown>) {
  return eventually(async () => {
    const r = await user.gql(CREATE, { input: { ...input, assignedRepId: repId } });
    if (r.errors) throw new Error(JSON.stringify(r.errors));
    return r.data.createCustomer as { id: string; name: string; assignedRep: { id: string } | null };
  });
}

/** A GraphQL request straight to a subgraph, signed as the gateway would sign `identity`. */
export const signedCall = (stack: TestStack, subgraph: string, identity: Identity, query: string, variables?: Record<string, unknown>) =>
  stack.signed(subgraph, identity, query, variables);

/** Statements each of `subgraphs` sends on behalf of `run` (the kit leaves background work out of statementCount()). */
export async function countStatements<K extends string>(stack: TestStack, subgraphs: K[], run: () => Promise<void>): Promise<Record<K, number>> {
  const before = subgraphs.map((name) => stack.subgraphs[name]!.db.statementCount());
  await run();
  return Object.fromEntries(subgraphs.map((name, i) => [name, stack.subgraphs[name]!.db.statementCount() - before[i]!])) as Record<K, number>;
}
