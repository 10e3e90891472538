/**
 * Inbound dedupe (INBOUND_DEDUPE, opt-in): identical concurrent queries share one execution, but
 * only after each request passed parsing, validation, limits, the denylist and its own rate-limit
 * charge; mutations (however spelled) and other callers never share; off by default.
 */
import { startTestStack, errorCode, type TestStack } from '@crm/platform';

const authStatements = (stack: TestStack) => stack.subgraphs.auth!.db.statementCount();
const LIST = '{ users(first: 5) { totalCount edges { node { id } } } }';

async function statementsFor(stack: TestStack, run: () => Promise<unknown>): Promise<number> {
  const before = authStatements(stack);
  await run();
  return authStatements(stack) - before;
}

describe('with INBOUND_DEDUPE=true', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ only: ['auth'], env: { INBOUND_DEDUPE: 'true', SUBGRAPH_DEDUPE: 'false', RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_POINTS: '40' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('ten identical concurrent queries of one user run once and all get the answer', async () => {
    const admin = await stack.admin();
    await admin.gql(LIST); // warm the plan cache
    let results: Awaited<ReturnType<typeof admin.gql>>[] = [];
    const statements = await statementsFor(stack, async () => {
      results = await Promise.all(Array.from({ length: 10 }, () => admin.gql(LIST)));
    });
    for (const r of results) {
      expect(r.errors).toBeUndefined();
      expect(r.data).toEqual(results[0]!.data);
    }
    // one execution is 2 statements (page + count); ten unshared ones would be 20
    expect(statements).toBeLessThan(20);
  });

  test('a request waiting for an identical one still pays its own rate-limit points', async () => {
    const user = await stack.user('SALES');
    // 40 points per window; registration was charged to the IP, not the user. 45 identical reads at once:
    // each is charged before it may share, so exactly 40 pass and 5 are refused.
    const results = await Promise.all(Array.from({ length: 45 }, () => user.gql('{ me { id } }')));
    const codes = results.map((r) => errorCode(r) ?? 'OK');
    expect(codes.filter((c) => c === 'OK')).toHaveLength(40);
    expect(codes.filter((c) => c === 'RATE_LIMITED')).toHaveLength(5);
  });

  test('an invalid document is refused on every request, never answered from a shared execution', async () => {
    const admin = await stack.admin();
    const results = await Promise.all([1, 2, 3].map(() => admin.gql('{ users(first: 5) { nope } }')));
    for (const r of results) expect(errorCode(r)).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  test('mutations are never shared, also when the keyword is escaped in the JSON body', async () => {
    const email = `same-${Date.now()}@x.io`;
    // "mut\u0061tion": the raw body has no "mutation" in it, the parsed document does.
    const raw = `{"query":"mut\\u0061tion { register(input: { email: \\"${email}\\", password: \\"0123456789\\", name: \\"Same\\" }) { user { id } } }"}`;
    const post = () =>
      fetch(stack.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw }).then(
        (r) => r.json() as Promise<{ errors?: { extensions?: { code?: string } }[] }>,
      );
    const results = await Promise.all([1, 2, 3].map(post));
    // the same body three times: exactly one registers, the others are conflicts — each ran on its own
    const codes = results.map((r) => errorCode(r) ?? 'OK').sort();
    expect(codes).toEqual(['CONFLICT', 'CONFLICT', 'OK']);
  });

  test('different callers never share an answer', async () => {
    const [a, b] = [await stack.user('SALES', 'Alpha'), await stack.user('SALES', 'Beta')];
    const [ra, rb] = await Promise.all([a.gql('{ me { name } }'), b.gql('{ me { name } }')]);
    expect(ra.data.me.name).toBe('Alpha');
    expect(rb.data.me.name).toBe('Beta');
  });

  test('different variables never share an answer', async () => {
    const admin = await stack.admin();
    const q = 'query($n: Int!) { users(first: $n) { edges { node { id } } } }';
    const [one, two] = await Promise.all([admin.gql(q, { n: 1 }), admin.gql(q, { n: 2 })]);
    expect(one.data.users.edges).toHaveLength(1);
    expect(two.data.users.edges).toHaveLength(2);
  });
});

describe('by default', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ only: ['auth'], env: { SUBGRAPH_DEDUPE: 'false' } }); // only inbound dedupe could share
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('identical concurrent queries each run', async () => {
    const admin = await stack.admin();
    await admin.gql(LIST);
    const statements = await statementsFor(stack, () => Promise.all(Array.from({ length: 10 }, () => admin.gql(LIST))));
    expect(statements).toBeGreaterThanOrEqual(20);
  });
});
