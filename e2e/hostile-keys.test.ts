/**
 * Hostile (issue 27 point 1): a compromised service other than auth tries to mint an ADMIN access
 * token, and a compromised subgraph tries to act as a user towards a peer, with whatever its
 * process actually holds: the environment the launcher gave it, read from /proc/<pid>/environ of
 * the platform in processes of its own (`npm start`'s mode).
 *
 * On the code before asymmetric keys both attacks succeeded (seen: this file run against it): JWT_SECRET
 * (HS256) and INTERNAL_SECRET (HMAC) were in every process, so an HS256 token with sub = the admin, role ADMIN and a large `tv`
 * answered `me` as ADMIN, and an HMAC-signed identity made auth list every user. Now auth alone
 * holds the key that signs access tokens, the gateway alone the one that signs identities; a
 * subgraph's own key makes it a service principal that a peer answers only for `_entities` reads.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac, createPrivateKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { generateSigningKey, jwksOf } from '@crm/runtime';
import { rawGraphQL, rawRequest, type RawResult } from '@crm/testing';
import { startGateway } from '@crm/gateway';
import { startProcessTestStack, type TestUser } from '@crm/platform';

type Stack = Awaited<ReturnType<typeof startProcessTestStack>>;
let stack: Stack;
let admin: TestUser;
const environ: Record<string, Record<string, string>> = {};

beforeAll(async () => {
  // JWT_SECRET and INTERNAL_SECRET as a deployment of the old code had to set them (production refused
  // their defaults): given to the launcher, which handed them to every process. The code now ignores them.
  stack = await startProcessTestStack({ env: { JWT_SECRET: randomBytes(32).toString('hex'), INTERNAL_SECRET: randomBytes(32).toString('hex') } });
  admin = await stack.admin();
  for (const [service, pid] of Object.entries(stack.pids)) environ[service] = environOf(pid);
});
afterAll(async () => {
  await stack?.stop();
});

/** What a process was started with (what an attacker inside it can read). */
function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** A private JWK in a variable's value, if it is one. */
function privateJwk(value: string): (JsonWebKey & { kid?: string }) | undefined {
  try {
    const jwk = JSON.parse(value) as JsonWebKey & { kid?: string };
    return typeof jwk === 'object' && jwk !== null && typeof jwk.d === 'string' ? jwk : undefined;
  } catch {
    return undefined;
  }
}

/** Every value long enough to be a secret, by variable name. */
const candidates = (env: Record<string, string>) => Object.entries(env).filter(([, v]) => v.length >= 32);

const ISSUER = 'crm-auth';
const AUDIENCE = 'crm-api';
const ME = '{ me { id role } }';
const NON_AUTH = ['gateway', 'customer', 'opportunity', 'sales-activity', 'analytics'];

/** Access tokens for the admin that a holder of `value` can sign: HS256 with it as the secret; ES256 when it is a private key. */
function mintedTokens(value: string): string[] {
  const claims = { role: 'ADMIN', email: admin.email, tv: 1_000_000 };
  const options = { subject: admin.id, issuer: ISSUER, audience: AUDIENCE, expiresIn: 600 };
  const tokens = [jwt.sign(claims, value, { ...options, algorithm: 'HS256' })];
  const jwk = privateJwk(value);
  if (jwk) {
    const key = createPrivateKey({ key: jwk, format: 'jwk' });
    tokens.push(jwt.sign(claims, key, { ...options, algorithm: 'ES256', ...(jwk.kid ? { keyid: jwk.kid } : {}) }));
  }
  return tokens;
}

test('no service but auth can mint an access token the gateway accepts (every secret of every non-auth process tried)', async () => {
  const accepted: string[] = [];
  for (const service of NON_AUTH) {
    for (const [name, value] of candidates(environ[service]!)) {
      for (const token of mintedTokens(value)) {
        const r = await rawGraphQL(stack.gatewayUrl, ME, { token });
        if (r.body.data?.me) accepted.push(`${service}:${name} → ${JSON.stringify(r.body.data.me)}`);
        else expect([service, name, r.status]).toEqual([service, name, 401]);
      }
    }
  }
  expect(accepted).toEqual([]);
  // control: the admin's real token (signed by auth) is accepted
  expect((await admin.gql(ME)).data.me).toEqual({ id: admin.id, role: 'ADMIN' });
});

const bodyHash = (body: string) => createHash('sha256').update(body).digest('base64url');
const USERS = JSON.stringify({ query: '{ users(first: 100) { edges { node { email role } } } }' });

/** Identity headers a holder of `value` can make for `payload`: the HMAC form (the old signer) and, with a private key, the JWS form. */
function forgedHeaders(value: string, payload: Record<string, unknown>): Record<string, string>[] {
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const forms = [{ 'x-crm-identity': encoded, 'x-crm-signature': createHmac('sha256', value).update(encoded).digest('base64url') }];
  const jwk = privateJwk(value);
  if (jwk) {
    const token = jwt.sign(payload, createPrivateKey({ key: jwk, format: 'jwk' }), { algorithm: 'ES256', ...(jwk.kid ? { keyid: jwk.kid } : {}) });
    const cut = token.lastIndexOf('.');
    forms.push({ 'x-crm-identity': token.slice(0, cut), 'x-crm-signature': token.slice(cut + 1) });
  }
  return forms;
}

test('a subgraph cannot act as a user towards a peer (every secret of every subgraph process tried)', async () => {
  const served: string[] = [];
  for (const service of ['auth', ...NON_AUTH.filter((s) => s !== 'gateway')]) {
    const peer = service === 'auth' ? 'customer' : 'auth';
    const body = peer === 'auth' ? USERS : JSON.stringify({ query: '{ customers(first: 100) { edges { node { id } } } }' });
    const iat = Math.floor(Date.now() / 1000);
    const asAdmin = { u: { userId: admin.id, role: 'ADMIN', email: admin.email }, iat, exp: iat + 30, sg: peer, m: 'POST', bh: bodyHash(body) };
    for (const [name, value] of candidates(environ[service]!)) {
      // as the admin; and as the admin while also naming itself (a service key must never carry a user)
      for (const payload of [asAdmin, { ...asAdmin, svc: service }]) {
        for (const headers of forgedHeaders(value, payload)) {
          const r: RawResult = await rawRequest(stack.subgraphUrls[peer]!, body, { headers });
          if (r.body.data) served.push(`${service}:${name} → ${peer} answered ${r.status}`);
          else expect([service, name, r.status]).toEqual([service, name, 401]);
        }
      }
    }
  }
  expect(served).toEqual([]);
});

test('each process holds only its own keys', () => {
  const keyNames = (env: Record<string, string>) =>
    Object.keys(env)
      .filter((k) => /_SIGNING_KEY$|_PUBLIC_KEYS$|^JWT_SECRET$|^INTERNAL_SECRET$/.test(k))
      .sort();
  expect(keyNames(environ.gateway!)).toEqual(['AUTH_PUBLIC_KEYS', 'GATEWAY_SIGNING_KEY']);
  expect(keyNames(environ.auth!)).toEqual(['AUTH_SIGNING_KEY', 'GATEWAY_PUBLIC_KEYS', 'SERVICE_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY']);
  for (const service of ['customer', 'opportunity', 'sales-activity', 'analytics']) {
    expect([service, keyNames(environ[service]!)]).toEqual([service, ['GATEWAY_PUBLIC_KEYS', 'SERVICE_PUBLIC_KEYS', 'SERVICE_SIGNING_KEY']]);
    // its own key speaks for itself: the kid names the service
    expect(privateJwk(environ[service]!.SERVICE_SIGNING_KEY!)?.kid).toMatch(new RegExp(`^${service}:`));
  }
  // public key sets carry no private part
  for (const env of Object.values(environ)) for (const [k, v] of Object.entries(env)) if (k.endsWith('_PUBLIC_KEYS')) expect(v).not.toMatch(/"d"\s*:/);
});

test("a subgraph's own key is a service principal: a peer answers its _entities read, refuses anything else", async () => {
  const jwk = privateJwk(environ.customer!.SERVICE_SIGNING_KEY!)!;
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  const asService = (body: string) => {
    const iat = Math.floor(Date.now() / 1000);
    const token = jwt.sign({ svc: 'customer', iat, exp: iat + 30, sg: 'auth', m: 'POST', bh: bodyHash(body) }, key, { algorithm: 'ES256', keyid: jwk.kid! });
    const cut = token.lastIndexOf('.');
    return rawRequest(stack.subgraphUrls.auth!, body, { headers: { 'x-crm-identity': token.slice(0, cut), 'x-crm-signature': token.slice(cut + 1) } });
  };
  const read = JSON.stringify({
    query: `query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id role } } }`,
    variables: { r: [{ __typename: 'User', id: admin.id }] },
  });
  expect((await asService(read)).body.data).toEqual({ _entities: [{ id: admin.id, role: 'ADMIN' }] });
  const list = await asService(USERS);
  expect([list.status, list.body.errors?.[0]?.extensions?.code, list.body.data ?? null]).toEqual([403, 'FORBIDDEN', null]);
  const write = await asService(JSON.stringify({ query: `mutation { updateUser(id: "${admin.id}", input: { role: SALES }) { id } }` }));
  expect([write.status, write.body.errors?.[0]?.extensions?.code]).toEqual([403, 'FORBIDDEN']);
  // two operations, one of them a mutation, are refused as a whole
  const smuggled = await asService(JSON.stringify({ query: `query A { _entities(representations: []) { __typename } } mutation B { logoutEverywhere }`, operationName: 'A' }));
  expect(smuggled.status).toBe(403);
});

test('production: a service without its keys refuses to start, naming the variable', async () => {
  const run = (entry: string) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/_SIGNING_KEY$|_PUBLIC_KEYS$/.test(k)) env[k] = v;
      const child = spawn(process.execPath, ['--import', 'tsx', entry], {
        cwd: join(__dirname, '..'),
        env: { ...env, NODE_ENV: 'production', EVENT_BUS: 'memory', DATA_DIR: 'memory', PORT: '0', HOST: '127.0.0.1', NODE_OPTIONS: '', LOG_LEVEL: 'error' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.once('exit', (code) => resolve({ code, output }));
    });
  const [subgraph, gateway] = await Promise.all([run('subgraphs/customer/src/main.ts'), run('gateway/src/main.ts')]);
  expect(subgraph.code).not.toBe(0);
  expect(subgraph.output).toMatch(/GATEWAY_PUBLIC_KEYS must be set in production/);
  expect(subgraph.output).toMatch(/SERVICE_SIGNING_KEY must be set in production/);
  expect(gateway.code).not.toBe(0);
  expect(gateway.output).toMatch(/GATEWAY_SIGNING_KEY must be set in production/);
  expect(gateway.output).toMatch(/AUTH_PUBLIC_KEYS must be set in production/);
});

test("auth's key rolls without downtime: both keys verify during the roll, the old one stops after it; auth publishes its JWKS", async () => {
  // auth's published keys: the one its tokens name, public only
  const jwks = (await (await fetch(new URL('/.well-known/jwks.json', stack.subgraphUrls.auth))).json()) as { keys: (JsonWebKey & { kid: string })[] };
  const oldKid = jwt.decode(admin.token, { complete: true })!.header.kid!;
  expect(jwks.keys.map((k) => k.kid)).toContain(oldKid);
  for (const k of jwks.keys) expect(k).not.toHaveProperty('d');

  // step 1 (publish): a new key pair; a gateway given both public keys (with the stack's own gateway key)
  const next = generateSigningKey('auth-next');
  const oldPublic = JSON.parse(environ.gateway!.AUTH_PUBLIC_KEYS!) as { keys: JsonWebKey[] };
  const claims = jwt.decode(admin.token) as Record<string, unknown>;
  const nextToken = jwt.sign({ role: claims.role, email: claims.email, tv: claims.tv }, createPrivateKey({ key: JSON.parse(next.privateJwk) as JsonWebKey, format: 'jwk' }), {
    algorithm: 'ES256',
    keyid: 'auth-next',
    subject: admin.id,
    issuer: ISSUER,
    audience: AUDIENCE,
    expiresIn: 300,
  });
  const withKeys = (keys: JsonWebKey[]) => ({ ...stack.config, GATEWAY_SIGNING_KEY: environ.gateway!.GATEWAY_SIGNING_KEY!, AUTH_PUBLIC_KEYS: jwksOf(...keys) });
  const during = await startGateway({ config: withKeys([...oldPublic.keys, next.publicJwk]), supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
  try {
    for (const token of [admin.token, nextToken]) expect((await rawGraphQL(during.url, ME, { token })).body.data?.me).toEqual({ id: admin.id, role: 'ADMIN' });
  } finally {
    await during.stop();
  }
  // step 3 (retire): the old public key removed; its tokens are refused, the new key's accepted
  const after = await startGateway({ config: withKeys([next.publicJwk]), supergraphSdl: stack.supergraphSdl, port: 0, host: '127.0.0.1' });
  try {
    const old = await rawGraphQL(after.url, ME, { token: admin.token });
    expect([old.status, old.body.data?.me ?? null]).toEqual([401, null]);
    expect((await rawGraphQL(after.url, ME, { token: nextToken })).body.data?.me).toEqual({ id: admin.id, role: 'ADMIN' });
  } finally {
    await after.stop();
  }
});
