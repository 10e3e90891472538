import { eventually, signIdentity, type Identity } from '@crm/kit';
import type { GraphQLResult, TestStack, TestUser } from '@crm/stack';

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
export async function signedCall(stack: TestStack, subgraph: string, identity: Identity, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(stack.subgraphs[subgraph]!.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signIdentity(identity, stack.config.INTERNAL_SECRET) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GraphQLResult;
}

export const identityOf = (u: TestUser): Identity => ({ userId: u.id, role: u.role, email: u.email });

/** SQL the outbox relay and the event consumers send on their own timers, not on behalf of a query. */
const BACKGROUND = /\b(outbox|inbox|pg_try_advisory_xact_lock)\b|^\s*(begin|commit|rollback|savepoint|release)\b/i;

/**
 * Statements `subgraphs` send while `run` runs, leaving out the relay's and consumers' background
 * polling (which db.statementCount() also counts, at its own pace).
 */
export async function countStatements<K extends string>(stack: TestStack, subgraphs: K[], run: () => Promise<void>): Promise<Record<K, number>> {
  const counts = {} as Record<K, number>;
  const detach: (() => void)[] = [];
  for (const name of subgraphs) {
    counts[name] = 0;
    const knex = stack.subgraphs[name]!.db.orm.em.getConnection().getKnex();
    const listener = (q: { sql?: string }) => {
      if (!BACKGROUND.test(q.sql ?? '')) counts[name] += 1;
    };
    knex.on('query', listener);
    detach.push(() => knex.removeListener('query', listener));
  }
  try {
    await run();
  } finally {
    for (const d of detach) d();
  }
  return counts;
}
