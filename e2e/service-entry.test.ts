/**
 * A subgraph's own entry (subgraphs/<name>/src/main.ts: the kit's runSubgraph), run as its container
 * runs it: a process of its own that serves alone, asks its peers where supergraph.yaml routes them
 * with <NAME>_URL overriding, and on SIGTERM stops (HTTP, relay, consumers, database) and exits 0.
 * Not NODE_ENV=test on purpose: the signal handling is the one production gets.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDENTITY_HEADER, SIGNATURE_HEADER, generateKeySet, keyEnvFor, parsePublicKeys, parseSigningKey, signIdentity, verifyIdentity } from '@crm/runtime';
import { answerData, startRecordingServer } from '@crm/testing';
import { readConfig } from '@crm/config';
import { dropTestDatabases, testOverrides } from '@crm/platform';
import { startService, waitFor, type ServiceProcess } from './support/replicas';

// the keys a deployment gives this one container: the gateway's public keys, its own private key, its peers' public keys
const KEYS = generateKeySet(['customer']);
const env = testOverrides(randomBytes(4).toString('hex'), { NODE_ENV: 'development', LOG_LEVEL: 'info', ...keyEnvFor('customer', KEYS) });
const repId = randomUUID();

/** Stands in for auth: answers the read-through for one SALES user, and keeps what it was asked. */
let auth: Awaited<ReturnType<typeof startRecordingServer>>;
let customer: ServiceProcess;

beforeAll(async () => {
  auth = await startRecordingServer((_req, res) =>
    answerData(res, { _entities: [{ id: repId, name: 'Stub Rep', email: 'stub.rep@test.local', role: 'SALES', active: true, approved: true }] }),
  );
  customer = await startService('customer', 'customer-entry', { ...env, AUTH_URL: auth.url }, join(tmpdir(), 'crm-service-entry'));
  await waitFor(customer, '/ready');
});

afterAll(async () => {
  customer?.kill('SIGKILL');
  await auth?.close();
  await dropTestDatabases(readConfig(process.env, env));
});

test('serves alone and reads through to its peer where <NAME>_URL routes it', async () => {
  const identity = { userId: randomUUID(), role: 'ADMIN' as const, email: 'admin@test.local' };
  const body = JSON.stringify({
    query: `mutation($rep: ID!) { createCustomer(input: { name: "Entry Co", assignedRepId: $rep }) { name assignedRep { id } } }`,
    variables: { rep: repId },
  });
  const res = await fetch(customer.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signIdentity(identity, parseSigningKey(KEYS.GATEWAY_SIGNING_KEY!), { subgraph: 'customer', method: 'POST', body }) },
    body,
  });
  const result = (await res.json()) as { data?: any; errors?: unknown[] };
  expect(result.errors).toBeUndefined();
  expect(result.data.createCustomer).toEqual({ name: 'Entry Co', assignedRep: { id: repId } });
  // the rep was unknown locally: customer asked auth (the stub) for it, signed
  expect(auth.received).toHaveLength(1);
  const [asked] = auth.received;
  expect(asked!.body).toContain('_entities');
  expect(asked!.body).toContain(repId);
  expect(asked!.headers[IDENTITY_HEADER]).toBeTruthy();
  expect(asked!.headers[SIGNATURE_HEADER]).toBeTruthy();
  // signed with customer's own key, as the customer service (no user): auth verifies it with the peers' public keys
  const verified = verifyIdentity(
    String(asked!.headers[IDENTITY_HEADER]),
    String(asked!.headers[SIGNATURE_HEADER]),
    { gateway: parsePublicKeys(KEYS.GATEWAY_PUBLIC_KEYS!), services: parsePublicKeys(KEYS.SERVICE_PUBLIC_KEYS!) },
    { subgraph: 'auth', method: 'POST', body: asked!.body },
  );
  expect(verified).toEqual({ ok: true, identity: null, service: 'customer' });
});

test('SIGTERM stops it cleanly: exit code 0', async () => {
  customer.kill('SIGTERM');
  expect(await customer.exited).toBe(0);
});
