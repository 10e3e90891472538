/** Identical concurrent reads share one execution; mutations and other callers never share. */
import { startTestStack, type TestStack } from '@crm/stack';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ only: ['auth'] });
});
afterAll(async () => {
  await stack?.stop();
});

const authStatements = () => stack.subgraphs.auth!.db.statementCount();

test('ten identical concurrent queries of one user run once and all get the answer', async () => {
  const admin = await stack.admin();
  await admin.gql('{ users(first: 5) { totalCount } }'); // warm the plan cache
  const before = authStatements();
  const results = await Promise.all(Array.from({ length: 10 }, () => admin.gql('{ users(first: 5) { totalCount edges { node { id } } } }')));
  const statements = authStatements() - before;
  for (const r of results) {
    expect(r.errors).toBeUndefined();
    expect(r.data).toEqual(results[0]!.data);
  }
  // one execution is 2 statements (page + count); ten unshared ones would be 20
  expect(statements).toBeLessThan(20);
});

test('mutations are never shared', async () => {
  const body = `mutation { register(input: { email: "same-${Date.now()}@x.io", password: "0123456789", name: "Same" }) { user { id } } }`;
  const results = await Promise.all([1, 2, 3].map(() => stack.gql(body)));
  // the same body three times: exactly one registers, the others are conflicts — each ran on its own
  const codes = results.map((r) => r.errors?.[0]?.extensions?.code ?? 'OK').sort();
  expect(codes).toEqual(['CONFLICT', 'CONFLICT', 'OK']);
});

test('different callers never share an answer', async () => {
  const [a, b] = [await stack.user('SALES', 'Alpha'), await stack.user('SALES', 'Beta')];
  const [ra, rb] = await Promise.all([a.gql('{ me { name } }'), b.gql('{ me { name } }')]);
  expect(ra.data.me.name).toBe('Alpha');
  expect(rb.data.me.name).toBe('Beta');
});
