/**
 * Hostile input thrown at the gateway: every case gets a clear refusal (status and
 * extensions.code), nothing changes, and the gateway still serves `{ me { id } }` after each
 * group. Cases are rows of tables: add a row (or a group) when a subgraph lands.
 * Rate limits and login protection: gateway-rate-limit.test.ts; production mode:
 * gateway-production.test.ts.
 */
import jwt from 'jsonwebtoken';
import { authSigningKey } from '@crm/runtime';
import { rawGraphQL, rawRequest, signTestAccessToken, type RawResult } from '@crm/testing';
import { createHmac, createPublicKey } from 'node:crypto';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { startTestStack, type TestStack, type TestUser } from '@crm/platform';

interface Expect {
  status: number | number[];
  /** Some error carries this code (or one of these). */
  code: string | string[];
  message?: RegExp;
  /** An extension every matching error must carry (e.g. { limit: 'MAX_DEPTH' }). */
  extensions?: Record<string, unknown>;
}

interface HostileCase {
  name: string;
  send(): Promise<RawResult>;
  expect: Expect;
}

let stack: TestStack;
let sales: TestUser;
let other: TestUser;
let admin: TestUser;

beforeAll(async () => {
  stack = await startTestStack({
    only: ['auth'],
    // short, so that the slow-client test below waits seconds, not the defaults' 10 and 30 s
    env: { CORS_ORIGINS: 'https://app.example.com', HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' },
  });
  admin = await stack.admin();
  sales = await stack.user('SALES', 'Hostile Tester');
  other = await stack.user('SALES', 'Someone Else');
});
afterAll(async () => {
  await stack?.stop();
});

const raw = (body: string | undefined, options: Parameters<typeof rawRequest>[2] = {}) => rawRequest(stack.gatewayUrl, body, options);
const post = (query: string, variables?: Record<string, unknown>, token?: string, extra: Record<string, unknown> = {}) =>
  rawGraphQL(stack.gatewayUrl, query, { variables, token, extra });

function check(c: HostileCase, r: RawResult): void {
  const statuses = Array.isArray(c.expect.status) ? c.expect.status : [c.expect.status];
  const codes = Array.isArray(c.expect.code) ? c.expect.code : [c.expect.code];
  const context = `${c.name}: ${r.status} ${r.text.slice(0, 300)}`;
  expect({ context, ok: statuses.includes(r.status) }).toEqual({ context, ok: true });
  const errors = r.body?.errors ?? [];
  const matching = errors.filter((e) => codes.includes(String(e.extensions?.code)));
  expect({ context, matched: matching.length > 0 }).toEqual({ context, matched: true });
  if (c.expect.message) expect(matching.map((e) => e.message).join(' | ')).toMatch(c.expect.message);
  if (c.expect.extensions) expect(matching.some((e) => Object.entries(c.expect.extensions!).every(([k, v]) => e.extensions?.[k] === v))).toBe(true);
  // A refusal's message never leaks internals (stack traces are on outside production: see
  // gateway-production.test.ts for the masked form).
  for (const e of errors) expect(e.message).not.toMatch(/ECONNREFUSED|\bselect\s.+\sfrom\s|\binsert into\b|invalid input syntax|127\.0\.0\.1|node_modules/i);
  // Nothing ran: no data for the refused operation.
  expect(r.body?.data ?? null).toBeNull();
}

async function usersCount(): Promise<number> {
  const r = await admin.gql('{ users(first: 1) { totalCount } }');
  return r.data.users.totalCount;
}

async function stillServing(): Promise<void> {
  const me = await sales.gql('{ me { id } }');
  expect(me.errors).toBeUndefined();
  expect(me.data.me.id).toBe(sales.id);
}

async function runGroup(cases: HostileCase[]): Promise<void> {
  const before = await usersCount();
  for (const c of cases) check(c, await c.send());
  expect(await usersCount()).toBe(before);
  await stillServing();
}

const nested = (depth: number) => `{ __type(name: "User") { ${'ofType { '.repeat(depth)}name${' }'.repeat(depth)} } }`;
const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { id }`).join(' ')} }`;

test('malformed requests: bad JSON, bad GraphQL, unknown operations, batches', async () => {
  await runGroup([
    { name: 'truncated JSON', send: () => raw('{"query": "{ me { id } }"'), expect: { status: 400, code: 'BAD_REQUEST', message: /not valid JSON/ } },
    { name: 'JSON string body', send: () => raw('"{ me { id } }"'), expect: { status: 400, code: 'BAD_REQUEST' } },
    { name: 'no query', send: () => raw('{}'), expect: { status: 400, code: 'BAD_REQUEST' } },
    { name: 'query not a string', send: () => raw('{"query": {"a": 1}}'), expect: { status: 400, code: 'BAD_REQUEST' } },
    { name: 'GraphQL syntax error', send: () => post('{ me { id }'), expect: { status: 400, code: 'GRAPHQL_PARSE_FAILED' } },
    { name: 'garbage GraphQL', send: () => post('\u0000\u0001 DROP TABLE users;'), expect: { status: 400, code: 'GRAPHQL_PARSE_FAILED' } },
    { name: 'unknown field', send: () => post('{ password }'), expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' } },
    {
      name: 'unknown operation name',
      send: () => post('query A { me { id } }', undefined, undefined, { operationName: 'B' }),
      expect: { status: 400, code: 'OPERATION_RESOLUTION_FAILURE', message: /Unknown operation named "B"/ },
    },
    { name: 'several operations, no name', send: () => post('query A { me { id } } query B { me { id } }'), expect: { status: 400, code: 'OPERATION_RESOLUTION_FAILURE' } },
    {
      name: 'batched array of 1,000 operations',
      send: () => raw(JSON.stringify(Array.from({ length: 1000 }, () => ({ query: 'mutation { logout }' })))),
      expect: { status: 400, code: 'BAD_REQUEST', message: /batching/i },
    },
    { name: 'empty batch', send: () => raw('[]'), expect: { status: 400, code: 'BAD_REQUEST' } },
  ]);
});

test('wrong types: variables, enum values, arguments', async () => {
  await runGroup([
    { name: 'object for ID!', send: () => post('query($id: ID!) { user(id: $id) { id } }', { id: { $ne: null } }, sales.token), expect: { status: 400, code: 'BAD_USER_INPUT' } },
    { name: 'missing required variable', send: () => post('query($id: ID!) { user(id: $id) { id } }', {}, sales.token), expect: { status: 400, code: 'BAD_USER_INPUT' } },
    { name: 'string for Int', send: () => post('query($n: Int) { users(first: $n) { totalCount } }', { n: 'ten' }, admin.token), expect: { status: 400, code: 'BAD_USER_INPUT' } },
    { name: 'huge Int', send: () => post('query($n: Int) { users(first: $n) { totalCount } }', { n: 2 ** 40 }, admin.token), expect: { status: 400, code: 'BAD_USER_INPUT' } },
    {
      name: 'inline string for Int',
      send: () => post('{ users(first: "ten") { totalCount } }', undefined, admin.token),
      expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' },
    },
    {
      name: 'enum value that does not exist (inline)',
      send: () => post('{ users(role: GOD) { totalCount } }', undefined, admin.token),
      expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' },
    },
    {
      name: 'enum value that does not exist (variable)',
      send: () => post('query($r: Role) { users(role: $r) { totalCount } }', { r: 'GOD' }, admin.token),
      expect: { status: 400, code: 'BAD_USER_INPUT' },
    },
    {
      name: 'role escalation through an unknown input field',
      send: () => post('mutation($i: RegisterInput!) { register(input: $i) { user { id } } }', { i: { email: 'x@y.io', password: '0123456789', name: 'X', role: 'ADMIN' } }),
      expect: { status: 400, code: 'BAD_USER_INPUT' },
    },
    {
      name: 'NUL byte in a variable',
      send: () => post('mutation($i: RegisterInput!) { register(input: $i) { user { id } } }', { i: { email: 'nul@y.io', password: '0123456789', name: 'a\u0000b' } }),
      expect: { status: 400, code: 'BAD_USER_INPUT', message: /NUL/ },
    },
  ]);
});

/** A pagination cursor as the API hands them out (base64url of [createdAt ISO, id]), but with what a client forged into it. */
const forgedCursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

test('forged pagination cursors: refused as bad input, not as a database error', async () => {
  const page = (after: string) => () => post('query($after: String) { users(first: 2, after: $after) { totalCount edges { node { id } } } }', { after }, admin.token);
  const refused: Expect = { status: 200, code: 'BAD_USER_INPUT', message: /after is not a valid cursor/ };
  await runGroup([
    { name: 'not base64url JSON', send: page('!!!'), expect: refused },
    { name: 'a JSON object', send: page(forgedCursor({ createdAt: '2026-01-01T00:00:00Z', id: '00000000-0000-0000-0000-000000000000' })), expect: refused },
    { name: 'id not a UUID', send: page(forgedCursor(['2026-01-01T00:00:00.000Z', "x' OR '1'='1"])), expect: refused },
    { name: 'id a number', send: page(forgedCursor(['2026-01-01T00:00:00.000Z', 5])), expect: refused },
    { name: 'date before the year 1', send: page(forgedCursor(['-100000-01-01T00:00:00.000Z', '00000000-0000-0000-0000-000000000000'])), expect: refused },
    { name: 'date after the year 9999', send: page(forgedCursor(['+275760-01-01T00:00:00.000Z', '00000000-0000-0000-0000-000000000000'])), expect: refused },
    { name: 'date not a date', send: page(forgedCursor(['yesterday', '00000000-0000-0000-0000-000000000000'])), expect: refused },
  ]);
  // A cursor the API handed out still pages on.
  const first = await admin.gql('{ users(first: 1) { pageInfo { endCursor hasNextPage } edges { node { id } cursor } } }');
  expect(first.errors).toBeUndefined();
  expect(first.data.users.edges[0].cursor).toBe(first.data.users.pageInfo.endCursor);
  const next = await admin.gql('query($after: String) { users(first: 1, after: $after) { edges { node { id } } } }', { after: first.data.users.pageInfo.endCursor });
  expect(next.errors).toBeUndefined();
  expect(next.data.users.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(first.data.users.edges[0].node.id);
});

/**
 * A client that sends its request a byte at a time (slowloris): without a deadline on receiving a
 * request, each such connection is held for as long as it keeps dribbling, and a few thousand of
 * them exhaust the gateway's sockets. Resolves with what the server answered and whether it closed.
 */
function dribble(first: string, drip: string, giveUpMs: number): Promise<{ closedByServer: boolean; answer: string }> {
  const url = new URL(stack.gatewayUrl);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    const done = (closedByServer: boolean) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ closedByServer, answer });
    };
    const giveUp = setTimeout(() => done(false), giveUpMs);
    socket.on('connect', () => {
      socket.write(first);
      timer = setInterval(() => socket.write(drip), 200);
    });
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('close', () => done(true));
    socket.on('error', () => undefined); // a write after the server closed: 'close' follows
  });
}

/** Two `{ me { id } }` requests on one keep-alive connection, `idleMs` apart: their statuses. */
function keepAliveTwice(host: string, idleMs: number): Promise<number[]> {
  const url = new URL(stack.gatewayUrl);
  const body = JSON.stringify({ query: '{ me { id } }' });
  const request = `POST /graphql HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\napollo-require-preflight: true\r\nAuthorization: Bearer ${sales.token}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const statuses: number[] = [];
    socket.on('data', (d: Buffer) => {
      for (const m of d.toString('latin1').matchAll(/HTTP\/1\.1 (\d{3})/g)) statuses.push(Number(m[1]));
      if (statuses.length === 1) setTimeout(() => socket.write(request), idleMs);
      if (statuses.length === 2) {
        socket.destroy();
        resolve(statuses);
      }
    });
    socket.on('close', () => resolve(statuses));
    socket.on('error', reject);
    socket.on('connect', () => socket.write(request));
  });
}

test('slow clients (slowloris) are cut off; WebSocket connections outlive the request deadline', async () => {
  const host = new URL(stack.gatewayUrl).host;
  // headers that never end: cut after HTTP_HEADERS_TIMEOUT_MS (1 s here), 408
  const headers = await dribble(`POST /graphql HTTP/1.1\r\nHost: ${host}\r\n`, 'X-Slow: 1\r\n', 15_000);
  expect(headers.closedByServer).toBe(true);
  expect(headers.answer).toMatch(/^HTTP\/1\.1 408/);
  // a body that never ends: cut after HTTP_REQUEST_TIMEOUT_MS (2 s here), 408
  const body = await dribble(
    `POST /graphql HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\napollo-require-preflight: true\r\nContent-Length: 100000\r\n\r\n{"query":"`,
    ' ',
    15_000,
  );
  expect(body.closedByServer).toBe(true);
  expect(body.answer).toMatch(/^HTTP\/1\.1 408/);
  // The deadlines are per request: a keep-alive connection idle for longer than both still serves the next one.
  const keptAlive = await keepAliveTwice(host, 3500);
  expect(keptAlive).toEqual([200, 200]);
  // A subscription socket is not a request being received: it stays open past both deadlines.
  const ws = new WebSocket(stack.gatewayUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const messages: string[] = [];
  ws.on('message', (d: Buffer) => messages.push(d.toString('utf8')));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${sales.token}` } }));
  await new Promise((resolve) => setTimeout(resolve, 3500));
  ws.send(JSON.stringify({ type: 'ping' }));
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(messages.map((m) => JSON.parse(m).type)).toEqual(['connection_ack', 'pong']);
  ws.close(1000);
  expect(await closed).toBe(1000);
  await stillServing();
}, 40_000);

test('operation limits: depth, aliases, directives, tokens, cost, body size', async () => {
  const { MAX_DEPTH, MAX_ALIASES, MAX_DIRECTIVES, MAX_TOKENS, MAX_COST, MAX_BODY_BYTES } = stack.config;
  await runGroup([
    {
      name: 'depth 50',
      send: () => post(nested(50), undefined, sales.token),
      expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: new RegExp(`depth limit of ${MAX_DEPTH}.*MAX_DEPTH`), extensions: { limit: 'MAX_DEPTH' } },
    },
    {
      name: `${MAX_ALIASES + 10} aliases`,
      send: () => post(aliases(MAX_ALIASES + 10), undefined, sales.token),
      expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /Aliases limit.*MAX_ALIASES/, extensions: { limit: 'MAX_ALIASES' } },
    },
    {
      name: '1,000 aliases',
      send: () => post(aliases(1000), undefined, sales.token),
      expect: { status: 400, code: ['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED'], message: new RegExp(`${MAX_TOKENS} tokens|Aliases limit`) },
    },
    {
      name: `${MAX_DIRECTIVES + 5} directives`,
      send: () => post(`{ me { ${Array.from({ length: MAX_DIRECTIVES + 5 }, (_, i) => `f${i}: id @skip(if: false)`).join(' ')} } }`, undefined, sales.token),
      expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED', extensions: { limit: 'MAX_DIRECTIVES' } },
    },
    {
      name: 'token flood',
      send: () => post(`{ me { ${'id '.repeat(MAX_TOKENS)}} }`, undefined, sales.token),
      expect: { status: 400, code: 'GRAPHQL_PARSE_FAILED', message: /tokens/ },
    },
    {
      name: 'circular fragments',
      send: () => post('query { me { ...A } } fragment A on User { id ...B } fragment B on User { name ...A }', undefined, sales.token),
      expect: { status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /Cannot spread fragment/ },
    },
    {
      name: 'cost over MAX_COST (list size from a variable)',
      send: () => post('query($n: Int) { users(first: $n) { edges { node { id } } } }', { n: 1_000_000 }, admin.token),
      expect: { status: 400, code: 'COST_LIMIT_EXCEEDED', message: new RegExp(`limit of ${MAX_COST} \\(MAX_COST\\)`) },
    },
    {
      name: '10 MB body',
      send: () => raw(JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(10 * 1024 * 1024) } })),
      expect: { status: 413, code: 'PAYLOAD_TOO_LARGE', message: new RegExp(`${MAX_BODY_BYTES} bytes`) },
    },
  ]);
});

test('HTTP: CSRF prevention, GET mutations, CORS preflights, security headers', async () => {
  await runGroup([
    {
      name: 'GET query without a preflight header (CSRF)',
      send: () => raw(undefined, { method: 'GET', search: `?query=${encodeURIComponent('{ me { id } }')}` }),
      expect: { status: 400, code: 'BAD_REQUEST', message: /CSRF/ },
    },
    {
      name: 'text/plain POST (CSRF)',
      send: () => raw(JSON.stringify({ query: 'mutation { logout }' }), { headers: { 'content-type': 'text/plain' } }),
      expect: { status: 400, code: 'BAD_REQUEST', message: /CSRF/ },
    },
    {
      name: 'GET mutation',
      send: () =>
        raw(undefined, {
          method: 'GET',
          search: `?query=${encodeURIComponent('mutation { logout }')}`,
          headers: { 'apollo-require-preflight': 'true', authorization: `Bearer ${sales.token}` },
        }),
      expect: { status: 405, code: 'BAD_REQUEST', message: /GET requests only support query/ },
    },
    {
      name: 'preflight from a foreign origin',
      send: () => raw(undefined, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } }),
      expect: { status: 403, code: 'FORBIDDEN', message: /CORS_ORIGINS/ },
    },
  ]);
  const ok = await raw(undefined, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
  });
  expect(ok.status).toBe(204);
  expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
  const simple = await raw(JSON.stringify({ query: '{ me { id } }' }), { headers: { origin: 'https://evil.example', authorization: `Bearer ${sales.token}` } });
  expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  const get = await raw(undefined, {
    method: 'GET',
    search: `?query=${encodeURIComponent('{ me { id } }')}`,
    headers: { 'apollo-require-preflight': 'true', authorization: `Bearer ${sales.token}` },
  });
  expect(get.status).toBe(200);
  expect(get.body?.data.me.id).toBe(sales.id);
  for (const h of ['content-security-policy', 'x-content-type-options', 'x-frame-options', 'referrer-policy']) expect(get.headers.get(h)).toBeTruthy();
});

test('tokens: forged, expired, alg none, wrong audience, wrong issuer, malformed header', async () => {
  const { JWT_ISSUER, JWT_AUDIENCE } = stack.config;
  const claims = { role: 'ADMIN', email: sales.email };
  const opts = { subject: sales.id, issuer: JWT_ISSUER, audience: JWT_AUDIENCE };
  const auth = authSigningKey(stack.config);
  const sign = (payload: object, options: jwt.SignOptions) => signTestAccessToken(stack.config, payload as Record<string, unknown>, { ...opts, ...options });
  // algorithm confusion: HS256 with auth's public key (PEM) as the HMAC secret, under auth's kid
  const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const confusedInput = `${encode({ alg: 'HS256', typ: 'JWT', kid: auth.kid })}.${encode({ ...claims, sub: sales.id, iss: JWT_ISSUER, aud: JWT_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 })}`;
  const publicPem = createPublicKey(auth.key).export({ type: 'spki', format: 'pem' }).toString();
  const confused = `${confusedInput}.${createHmac('sha256', publicPem).update(confusedInput).digest('base64url')}`;
  const tokens: Record<string, string> = {
    forged: jwt.sign(claims, 'another-secret-that-is-long-enough-0123', { ...opts, expiresIn: 60 }),
    expired: sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 }, {}),
    'alg none': `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, sub: sales.id, iss: JWT_ISSUER, aud: JWT_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`,
    'wrong audience': sign(claims, { audience: 'someone-else', expiresIn: 60 }),
    'wrong issuer': sign(claims, { issuer: 'evil', expiresIn: 60 }),
    "HS256 with auth's public key as the secret": confused,
    'unknown role': sign({ ...claims, role: 'GOD' }, { expiresIn: 60 }),
    garbage: 'garbage',
  };
  await runGroup([
    ...Object.entries(tokens).map(([name, token]): HostileCase => ({
      name,
      send: () => post('{ me { id role } }', undefined, token),
      expect: { status: 401, code: 'UNAUTHENTICATED' },
    })),
    {
      name: 'Basic auth header',
      send: () => raw(JSON.stringify({ query: '{ me { id } }' }), { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }),
      expect: { status: 401, code: 'UNAUTHENTICATED' },
    },
  ]);
});

test('a deleted user’s access token is refused at once (gateway denylist)', async () => {
  const victim = await stack.user('SALES', 'Soon Deleted');
  expect((await victim.gql('{ me { id } }')).data.me.id).toBe(victim.id);
  const del = await admin.gql('mutation($id: ID!) { deleteUser(id: $id) { id } }', { id: victim.id });
  expect(del.errors).toBeUndefined();
  const deadline = Date.now() + 30_000;
  let r = await victim.gql('{ me { id } }');
  while (r.status !== 401 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 200));
    r = await victim.gql('{ me { id } }');
  }
  expect(r.status).toBe(401);
  expect(r.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  expect(r.errors?.[0]?.message).toMatch(/deleted/);
  await stillServing();
});

test('injection strings are data: stored and returned verbatim, never executed', async () => {
  const payloads = [
    "Robert'); DROP TABLE users; --",
    "' OR '1'='1",
    '"; SELECT pg_sleep(10); --',
    '{"$gt": ""}',
    '{"__proto__": {"admin": true}}',
    '$(rm -rf /) `id`',
    '<script>alert(1)</script>',
  ];
  for (const name of payloads) {
    const u = await stack.user('SALES', name);
    const me = await u.gql('{ me { name role } }');
    expect(me.data.me).toEqual({ name, role: 'SALES' });
  }
  const filters = [
    { q: 'query($a: ID) { auditLog(actorId: $a, first: 5) { totalCount } }', v: { a: "' OR '1'='1" } },
    { q: 'query($t: String) { auditLog(entityType: $t, first: 5) { totalCount } }', v: { t: "User' OR '1'='1" } },
    { q: 'query($t: String) { auditLog(entityType: $t, first: 5) { totalCount } }', v: { t: '{"$ne": null}' } },
    { q: 'query($c: String) { users(after: $c, first: 5) { totalCount } }', v: { c: "'; DROP TABLE users; --" } },
  ];
  for (const { q, v } of filters) {
    const r = await admin.gql(q, v);
    if (r.errors) expect(r.errors.map((e) => e.extensions?.code)).toEqual(expect.arrayContaining(['BAD_USER_INPUT']));
    else expect(Object.values(r.data as Record<string, { totalCount: number }>)[0]!.totalCount).toBe(0);
  }
  expect(await usersCount()).toBeGreaterThan(payloads.length);
  await stillServing();
});

test('Unicode names are stored verbatim (after trimming); NUL is refused', async () => {
  const names = ['Zoë 👩🏽‍💻 🚀', 'مرحبا بالعالم', 'שלום \u202Eevil\u202C', 'Z\u0351\u0300a\u0363l\u0364g\u0365o\u0366', 'zero\u200Bwidth\u200D\uFEFFjoin', '𝕌𝕟𝕚𝕔𝕠𝕕𝕖', 'a'.repeat(200)];
  for (const name of names) {
    const u = await stack.user('SALES', name);
    expect((await u.gql('{ me { name } }')).data.me.name).toBe(name);
  }
  const before = await usersCount();
  const nul = await stack.gql('mutation { register(input: { email: "nul2@x.io", password: "0123456789", name: "a\\u0000b" }) { user { id } } }');
  expect(nul.status).toBe(400);
  expect(nul.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  const tooLong = await stack.gql('mutation($n: String!) { register(input: { email: "long@x.io", password: "0123456789", name: $n }) { user { id } } }', { n: 'a'.repeat(201) });
  expect(tooLong.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  expect(await usersCount()).toBe(before);
  await stillServing();
});

test('other users’ objects and direct subgraph calls are refused', async () => {
  await runGroup([
    {
      name: 'updateUser on someone else',
      send: () => post('mutation($id: ID!) { updateUser(id: $id, input: { name: "Hijacked" }) { id name } }', { id: other.id }, sales.token),
      expect: { status: [200], code: 'FORBIDDEN' },
    },
    {
      name: 'deleteUser as SALES',
      send: () => post('mutation($id: ID!) { deleteUser(id: $id) { id } }', { id: other.id }, sales.token),
      expect: { status: [200], code: 'FORBIDDEN' },
    },
    {
      name: 'direct subgraph call with a forged signature',
      send: async () => {
        const res = await fetch(stack.subgraphs.auth!.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-crm-identity': Buffer.from(JSON.stringify({ u: { userId: sales.id, role: 'ADMIN', email: sales.email }, iat: Math.floor(Date.now() / 1000) })).toString('base64url'),
            'x-crm-signature': 'forged',
          },
          body: JSON.stringify({ query: 'mutation($id: ID!) { deleteUser(id: $id) { id } }', variables: { id: other.id } }),
        });
        const text = await res.text();
        return { status: res.status, headers: res.headers, text, body: JSON.parse(text) };
      },
      expect: { status: 401, code: 'UNAUTHENTICATED' },
    },
    {
      name: 'direct subgraph call with a user token only',
      send: async () => {
        const res = await fetch(stack.subgraphs.auth!.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}` },
          body: JSON.stringify({ query: '{ users { totalCount } }' }),
        });
        const text = await res.text();
        return { status: res.status, headers: res.headers, text, body: JSON.parse(text) };
      },
      expect: { status: 401, code: 'UNAUTHENTICATED' },
    },
  ]);
  const them = await other.gql('{ me { name active } }');
  expect(them.data.me).toEqual({ name: 'Someone Else', active: true });
});
