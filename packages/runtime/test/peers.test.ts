/**
 * The read-through peers client (kit peers.ts) against a subgraph of our own on node:http: it
 * sends only the allow-listed headers (subgraph-call.ts), gives up on a peer that hangs after
 * its timeout with SERVICE_UNAVAILABLE (reason SUBGRAPH_TIMEOUT), and then lets it rest as long
 * before asking it again.
 */
import type { ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { answerData, startRecordingServer } from '@crm/testing';
import { createPeers, generateKeySet, gatewayPublicKeys, parseSigningKey, servicePublicKeys, SUBGRAPH_CALL_HEADERS, verifyIdentity } from '@crm/runtime';

const KEYS = generateKeySet(['opportunity']);
const keyConfig = { production: false, DATA_DIR: 'memory', ...KEYS };
const signer = () => parseSigningKey(KEYS.OPPORTUNITY_SERVICE_KEY!);
let peer: Awaited<ReturnType<typeof startRecordingServer>>;
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  peer = await startRecordingServer(({ body }, res) => {
    if (body.includes('hang-id')) hanging.push(res);
    else answerData(res, { _entities: [{ id: 'c1', name: 'Acme' }] });
  });
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  await peer.close();
});

test('a read-through carries the allow-listed headers only, signed as its own service (no user)', async () => {
  const peers = createPeers({ signer, timeoutMs: 5000, urlOf: () => peer.url });
  expect(await peers.entity('customer', 'Customer', 'c1', 'id name')).toEqual({ id: 'c1', name: 'Acme' });
  const call = peer.received.at(-1)!;
  const transport = ['host', 'content-length', 'connection', 'user-agent', 'accept-language', 'sec-fetch-mode', 'accept-encoding'];
  expect(Object.keys(call.headers).filter((h) => !transport.includes(h) && !(SUBGRAPH_CALL_HEADERS as readonly string[]).includes(h))).toEqual([]);
  const verified = verifyIdentity(
    String(call.headers['x-crm-identity']),
    String(call.headers['x-crm-signature']),
    { gateway: gatewayPublicKeys(keyConfig), services: servicePublicKeys(keyConfig) },
    { subgraph: 'customer', method: 'POST', body: call.body },
  );
  expect(verified).toEqual({ ok: true, identity: null, service: 'opportunity' });
});

test('a peer that hangs: SERVICE_UNAVAILABLE (SUBGRAPH_TIMEOUT) after the timeout', async () => {
  const peers = createPeers({ signer, timeoutMs: 2000, urlOf: () => peer.url }); // long enough for a loaded machine to deliver the fetch
  const err = await peers.entity('customer', 'Customer', 'hang-id', 'id').catch((e: unknown) => e);
  expect(hanging).toHaveLength(1);
  expect(err).toBeInstanceOf(GraphQLError);
  expect((err as GraphQLError).extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', reason: 'SUBGRAPH_TIMEOUT', service: 'customer', timeoutMs: 2000 });
});

test('a peer that timed out is not asked again for as long as the timeout: the next calls fail at once; other peers are asked', async () => {
  const peers = createPeers({ signer, timeoutMs: 1500, urlOf: () => peer.url });
  const first = await peers.entity('customer', 'Customer', 'hang-id', 'id').catch((e: unknown) => e);
  expect((first as GraphQLError).extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE', reason: 'SUBGRAPH_TIMEOUT' });
  const asked = peer.received.length;
  const resting = await peers.entity('customer', 'Customer', 'c1', 'id name').catch((e: unknown) => e);
  expect((resting as GraphQLError).extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
  expect(peer.received.length).toBe(asked); // not asked
  expect(await peers.entity('auth', 'User', 'c1', 'id name')).toEqual({ id: 'c1', name: 'Acme' }); // another peer is
  await new Promise((resolve) => setTimeout(resolve, 1600));
  expect(await peers.entity('customer', 'Customer', 'c1', 'id name')).toEqual({ id: 'c1', name: 'Acme' }); // asked again
});
