/**
 * The gateway in production mode: errors masked (no stack, SQL or host names), introspection and
 * field suggestions off, no Sandbox, strict security headers, rate-limit headers on; automatic
 * persisted queries and trusted documents (TRUSTED_DOCUMENTS=allow on the stack's gateway, a
 * second gateway with TRUSTED_DOCUMENTS=only).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type GatewayRuntime } from '@crm/gateway';
import { generateKeySet, keyEnvFor } from '@crm/runtime';
import { rawGraphQL, type RawResult } from '@crm/testing';
import { startTestStack, type TestStack, type TestUser } from '@crm/platform';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const TRUSTED_ME = 'query Me { me { id name } }';

const generatedKeys = generateKeySet(['auth']);
const productionKeys = { ...keyEnvFor('gateway', generatedKeys), ...keyEnvFor('auth', generatedKeys) };
let stack: TestStack;
let user: TestUser;
let manifestPath: string;
const gateways: GatewayRuntime[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crm-trusted-'));
  manifestPath = join(dir, 'persisted-operations.json');
  writeFileSync(manifestPath, JSON.stringify({ [sha256(TRUSTED_ME)]: TRUSTED_ME }));
  stack = await startTestStack({
    only: ['auth'],
    env: {
      NODE_ENV: 'production',
      // production starts only with the keys (one process here: auth's and the gateway's together)
      ...productionKeys,
      TRUSTED_DOCUMENTS: 'allow',
      TRUSTED_DOCUMENTS_PATH: manifestPath,
      RATE_LIMIT_POINTS: '1000',
    },
  });
  user = await stack.user('SALES', 'Prod User');
});
afterAll(async () => {
  for (const g of gateways) await g.stop();
  await stack?.stop();
});

type Result = RawResult;
/** A GraphQL request as a client sends it: `payload` is the body ({ query?, variables?, extensions? }). */
const send = (url: string, { query, ...extra }: { query?: string; extensions?: unknown }, token?: string) => rawGraphQL(url, query, { token, extra });

const code = (r: Result) => r.body.errors?.[0]?.extensions?.code;
const LEAKS = /stacktrace|node_modules|\.ts:\d+|ECONNREFUSED|127\.0\.0\.1|localhost|SELECT |INSERT |postgres/i;

test('production: introspection off, no suggestions, no stack traces, strict headers, rate-limit headers', async () => {
  const intro = await send(stack.gatewayUrl, { query: '{ __schema { types { name } } }' }, user.token);
  expect(intro.status).toBe(400);
  expect(code(intro)).toBe('GRAPHQL_VALIDATION_FAILED');
  expect(intro.text).toMatch(/introspection/i);

  const typo = await send(stack.gatewayUrl, { query: '{ mee { id } }' }, user.token);
  expect(code(typo)).toBe('GRAPHQL_VALIDATION_FAILED');
  expect(typo.text).not.toMatch(/Did you mean/);

  const parse = await send(stack.gatewayUrl, { query: '{ me { id }' });
  expect(code(parse)).toBe('GRAPHQL_PARSE_FAILED');
  expect(parse.text).not.toMatch(LEAKS);

  const ok = await send(stack.gatewayUrl, { query: '{ me { id } }' }, user.token);
  expect(ok.body.data.me.id).toBe(user.id);
  expect(ok.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
  expect(ok.headers.get('strict-transport-security')).toMatch(/max-age=/);
  expect(ok.headers.get('ratelimit-limit')).toBe('1000');
  expect(Number(ok.headers.get('ratelimit-remaining'))).toBeLessThan(1000);

  const landing = await fetch(stack.gatewayUrl, { headers: { accept: 'text/html' } });
  expect(await landing.text()).not.toMatch(/embeddable-sandbox|<html/i);
});

test('production: internal errors are masked — no stack, SQL or host names', async () => {
  // A gateway whose auth subgraph is unreachable: the fetch error names a host and port.
  const dead = stack.supergraphSdl.replace(/http:\/\/127\.0\.0\.1:\d+/g, 'http://127.0.0.1:9');
  const g = await startGateway({ config: stack.config, supergraphSdl: dead, port: 0, host: '127.0.0.1' });
  gateways.push(g);
  const r = await send(g.url, { query: '{ me { id name } }' }, user.token);
  expect(code(r)).toBe('INTERNAL_SERVER_ERROR');
  expect(r.body.errors?.[0]?.message).toBe('Internal server error');
  expect(r.text).not.toMatch(LEAKS);
  expect((await fetch(new URL('/health', g.url))).status).toBe(200);
});

test('automatic persisted queries: register once, then send the hash only', async () => {
  const query = '{ me { id email } }';
  const ext = { persistedQuery: { version: 1, sha256Hash: sha256(query) } };
  const miss = await send(stack.gatewayUrl, { extensions: ext }, user.token);
  expect(code(miss)).toBe('PERSISTED_QUERY_NOT_FOUND');
  const register = await send(stack.gatewayUrl, { query, extensions: ext }, user.token);
  expect(register.body.data.me.id).toBe(user.id);
  const hit = await send(stack.gatewayUrl, { extensions: ext }, user.token);
  expect(hit.body.data.me.email).toBe(user.email);
  const lie = await send(stack.gatewayUrl, { query: '{ me { role } }', extensions: ext }, user.token);
  expect(lie.status).toBe(400);
});

test('TRUSTED_DOCUMENTS=allow: manifest hashes resolve, other queries still run', async () => {
  const trusted = await send(stack.gatewayUrl, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256(TRUSTED_ME) } } }, user.token);
  expect(trusted.body.data.me).toEqual({ id: user.id, name: 'Prod User' });
  const free = await send(stack.gatewayUrl, { query: '{ me { role } }' }, user.token);
  expect(free.body.data.me.role).toBe('SALES');
});

test('TRUSTED_DOCUMENTS=only: only manifest documents run', async () => {
  const g = await startGateway({ config: { ...stack.config, TRUSTED_DOCUMENTS: 'only' }, supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
  gateways.push(g);
  const byHash = await send(g.url, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256(TRUSTED_ME) } } }, user.token);
  expect(byHash.body.data.me.id).toBe(user.id);
  const byText = await send(g.url, { query: TRUSTED_ME }, user.token);
  expect(byText.body.data.me.id).toBe(user.id);

  const free = await send(g.url, { query: '{ me { id } }' }, user.token);
  expect(free.status).toBe(403);
  expect(code(free)).toBe('FORBIDDEN');
  expect(free.body.errors?.[0]?.message).toMatch(/trusted documents/);
  const unknown = await send(g.url, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256('{ users { totalCount } }') } } }, user.token);
  expect(code(unknown)).toBe('PERSISTED_QUERY_NOT_FOUND');
  expect(unknown.body.data ?? null).toBeNull();
  // APQ cannot smuggle a document in: registering a new hash is a free query, refused.
  const q = '{ me { email } }';
  const smuggle = await send(g.url, { query: q, extensions: { persistedQuery: { version: 1, sha256Hash: sha256(q) } } }, user.token);
  expect(code(smuggle)).toBe('FORBIDDEN');
  const again = await send(g.url, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256(q) } } }, user.token);
  expect(code(again)).toBe('PERSISTED_QUERY_NOT_FOUND');
});

test('production: /metrics is not public — off without METRICS_TOKEN, and with it only for the bearer of the token', async () => {
  // The stack runs in production without METRICS_TOKEN: neither the public gateway port nor a subgraph serves metrics.
  expect((await fetch(new URL('/metrics', stack.gatewayUrl))).status).toBe(404);
  expect((await fetch(new URL('/metrics', stack.subgraphs.auth!.url))).status).toBe(404);

  const token = randomBytes(24).toString('hex');
  const g = await startGateway({ config: { ...stack.config, METRICS_TOKEN: token }, supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
  gateways.push(g);
  const metrics = (authorization?: string) => fetch(new URL('/metrics', g.url), authorization ? { headers: { authorization } } : {});
  expect((await metrics()).status).toBe(401);
  expect((await metrics(`Bearer ${token.slice(0, -1)}x`)).status).toBe(401);
  const ok = await metrics(`Bearer ${token}`);
  expect(ok.status).toBe(200);
  expect(await ok.text()).toMatch(/^# HELP /m);
});
