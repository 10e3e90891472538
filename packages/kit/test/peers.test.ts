/**
 * The read-through peers client (kit peers.ts) against a subgraph of our own on node:http: it
 * sends only the allow-listed headers (subgraph-call.ts) and gives up on a peer that hangs after
 * its timeout with SERVICE_UNAVAILABLE (reason SUBGRAPH_TIMEOUT).
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { createPeers, SUBGRAPH_CALL_HEADERS, SYSTEM_IDENTITY, verifyIdentity } from '@crm/kit';

const SECRET = 'peers-test-secret-0123456789abcdefghij';
let server: Server;
let url: string;
const received: { headers: IncomingHttpHeaders; body: string }[] = [];
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ headers: req.headers, body });
      if (body.includes('hang-id')) return void hanging.push(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: { _entities: [{ id: 'c1', name: 'Acme' }] } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/graphql`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('a read-through carries the allow-listed headers only, signed as the platform', async () => {
  const peers = createPeers({ secret: SECRET, timeoutMs: 5000, urlOf: () => url });
  expect(await peers.entity('customer', 'Customer', 'c1', 'id name')).toEqual({ id: 'c1', name: 'Acme' });
  const call = received.at(-1)!;
  const transport = ['host', 'content-length', 'connection', 'user-agent', 'accept-language', 'sec-fetch-mode', 'accept-encoding'];
  expect(Object.keys(call.headers).filter((h) => !transport.includes(h) && !(SUBGRAPH_CALL_HEADERS as readonly string[]).includes(h))).toEqual([]);
  const verified = verifyIdentity(String(call.headers['x-crm-identity']), String(call.headers['x-crm-signature']), SECRET, { subgraph: 'customer', method: 'POST', body: call.body });
  expect(verified).toEqual({ ok: true, identity: SYSTEM_IDENTITY });
});

test('a peer that hangs: SERVICE_UNAVAILABLE (SUBGRAPH_TIMEOUT) after the timeout', async () => {
  const peers = createPeers({ secret: SECRET, timeoutMs: 200, urlOf: () => url });
  const err = await peers.entity('customer', 'Customer', 'hang-id', 'id').catch((e: unknown) => e);
  expect(hanging).toHaveLength(1);
  expect(err).toBeInstanceOf(GraphQLError);
  expect((err as GraphQLError).extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', reason: 'SUBGRAPH_TIMEOUT', service: 'customer', timeoutMs: 200 });
});
