/**
 * A subgraph's own entry (subgraphs/<name>/src/main.ts: the kit's runSubgraph), run as its container
 * runs it: a process of its own that serves alone, asks its peers where supergraph.yaml routes them
 * with <NAME>_URL overriding, and on SIGTERM stops (HTTP, relay, consumers, database) and exits 0.
 * Not NODE_ENV=test on purpose: the signal handling is the one production gets.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDENTITY_HEADER, SIGNATURE_HEADER, readConfig, signIdentity } from '@crm/kit';
import { dropTestDatabases, testOverrides } from '@crm/platform';
import { startService, waitFor, type ServiceProcess } from './support/replicas';

const SECRET = randomBytes(24).toString('hex');
const env = testOverrides(randomBytes(4).toString('hex'), { NODE_ENV: 'development', LOG_LEVEL: 'info', INTERNAL_SECRET: SECRET });
const repId = randomUUID();

/** Stands in for auth: answers the read-through for one SALES user, and keeps what it was asked. */
const asked: { body: string; signed: boolean }[] = [];
let auth: Server;
let customer: ServiceProcess;

beforeAll(async () => {
  auth = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      asked.push({ body, signed: Boolean(req.headers[IDENTITY_HEADER] && req.headers[SIGNATURE_HEADER]) });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: { _entities: [{ id: repId, name: 'Stub Rep', email: 'stub.rep@test.local', role: 'SALES', active: true, approved: true }] } }));
    });
  });
  await new Promise<void>((resolve) => auth.listen(0, '127.0.0.1', resolve));
  const authUrl = `http://127.0.0.1:${(auth.address() as { port: number }).port}/graphql`;
  customer = await startService('customer', 'customer-entry', { ...env, AUTH_URL: authUrl }, join(tmpdir(), 'crm-service-entry'));
  await waitFor(customer, '/ready');
});

afterAll(async () => {
  customer?.kill('SIGKILL');
  await new Promise((resolve) => auth?.close(resolve));
  await dropTestDatabases(readConfig(process.env, env));
});

test('serves alone and reads through to its peer where <NAME>_URL routes it', async () => {
  const identity = { userId: randomUUID(), role: 'ADMIN' as const, email: 'admin@test.local' };
  const body = JSON.stringify({ query: `mutation($rep: ID!) { createCustomer(input: { name: "Entry Co", assignedRepId: $rep }) { name assignedRep { id } } }`, variables: { rep: repId } });
  const res = await fetch(customer.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signIdentity(identity, SECRET, { subgraph: 'customer', method: 'POST', body }) },
    body,
  });
  const result = (await res.json()) as { data?: any; errors?: unknown[] };
  expect(result.errors).toBeUndefined();
  expect(result.data.createCustomer).toEqual({ name: 'Entry Co', assignedRep: { id: repId } });
  // the rep was unknown locally: customer asked auth (the stub) for it, signed
  expect(asked).toHaveLength(1);
  expect(asked[0]!.body).toContain('_entities');
  expect(asked[0]!.body).toContain(repId);
  expect(asked[0]!.signed).toBe(true);
});

test('SIGTERM stops it cleanly: exit code 0', async () => {
  customer.kill('SIGTERM');
  expect(await customer.exited).toBe(0);
});
