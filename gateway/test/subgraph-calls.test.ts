/**
 * What the gateway sends to a subgraph and how long it waits, and how it stops. One small
 * subgraph of our own on node:http records every request's headers and answers `ping` at once,
 * `slow` when the test says so and `hang` never.
 * - A hostile client's own headers (a forged x-crm-identity, Cookie, Authorization, anything else)
 *   never reach the subgraph: only the kit's allow-list does, with the identity the gateway signed.
 * - A subgraph that hangs gives the operation SERVICE_UNAVAILABLE (reason SUBGRAPH_TIMEOUT) after
 *   SUBGRAPH_TIMEOUT_MS (tiny here), not after undici's 300 s.
 * - stop(): a request in flight finishes with its answer; a new connection is refused.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type ServerResponse } from 'node:http';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { gatewayPublicKeys, IDENTITY_HEADER, SIGNATURE_HEADER, SUBGRAPH_CALL_HEADERS, verifyIdentity } from '@crm/runtime';
import { signTestAccessToken, answerData, rawGraphQL, startRecordingServer, testSettings } from '@crm/testing';
import { readConfig, type PlatformConfig } from '@crm/config';
import { startGateway, type GatewayRuntime } from '../src/server';

const TYPE_DEFS = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type Query { ping: String, slow: String, hang: String }`;
const TIMEOUT_MS = 2000; // small, yet long enough for a loaded CI machine to deliver the fetch (300 ms was not)
const gatewayConfig = (env: Record<string, string>) => readConfig(process.env, testSettings(randomBytes(4).toString('hex'), env));

let subgraph: Awaited<ReturnType<typeof startRecordingServer>>;
const hanging: ServerResponse[] = [];
const slowAnswers: (() => void)[] = [];
let config: PlatformConfig;
let gateway: GatewayRuntime;
let supergraphSdl: string;

beforeAll(async () => {
  subgraph = await startRecordingServer(({ body }, res) => {
    const { query } = JSON.parse(body) as { query: string };
    if (query.includes('hang')) hanging.push(res);
    else if (query.includes('slow')) slowAnswers.push(() => answerData(res, { slow: 'finished' }));
    else answerData(res, { ping: 'pong' });
  });
  const subgraphUrl = subgraph.url;
  const composed = composeServices([{ name: 'probe', typeDefs: parse(TYPE_DEFS), url: subgraphUrl }]);
  if (!composed.supergraphSdl) throw new Error(`composition failed: ${composed.errors?.map((e) => e.message).join('; ')}`);
  supergraphSdl = composed.supergraphSdl;
  config = gatewayConfig({ SUBGRAPH_TIMEOUT_MS: String(TIMEOUT_MS) });
  gateway = await startGateway({ config, supergraphSdl, port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await gateway?.stop();
  for (const res of hanging) res.destroy();
  await subgraph.close();
});

test('only the allow-listed headers reach a subgraph; the identity is the one the gateway signed', async () => {
  const user = { id: randomUUID(), role: 'SALES', email: 'rep@test.local' };
  const token = signTestAccessToken(config, { role: user.role, email: user.email, tv: 0 }, { subject: user.id, expiresIn: 60 });
  const forged = Buffer.from(JSON.stringify({ u: { userId: 'attacker', role: 'ADMIN', email: 'x@x' } })).toString('base64url');
  const before = subgraph.received.length;
  const r = await rawGraphQL(gateway.url, '{ ping }', {
    token,
    headers: {
      [IDENTITY_HEADER]: forged,
      [SIGNATURE_HEADER]: 'forged',
      cookie: 'session=secret-cookie',
      'x-api-key': 'client-key',
      'x-forwarded-host': 'evil.example',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
    },
  });
  expect(r.body).toEqual({ data: { ping: 'pong' } });
  const call = subgraph.received[before]!;
  // node:http adds host, content-length and connection; everything else must be on the allow-list.
  const transport = ['host', 'content-length', 'connection'];
  const extra = Object.keys(call.headers).filter((h) => !transport.includes(h) && !(SUBGRAPH_CALL_HEADERS as readonly string[]).includes(h));
  expect(extra).toEqual([]);
  expect(call.headers.authorization).toBeUndefined();
  expect(call.headers.cookie).toBeUndefined();
  expect(call.headers[IDENTITY_HEADER]).not.toBe(forged);
  const verified = verifyIdentity(
    String(call.headers[IDENTITY_HEADER]),
    String(call.headers[SIGNATURE_HEADER]),
    { gateway: gatewayPublicKeys(config) },
    { subgraph: 'probe', method: 'POST', body: call.body },
  );
  expect(verified).toEqual({ ok: true, identity: { userId: user.id, role: 'SALES', email: user.email } });
});

test('a subgraph that hangs: the operation gets SERVICE_UNAVAILABLE (SUBGRAPH_TIMEOUT) once SUBGRAPH_TIMEOUT_MS is over', async () => {
  const hung = hanging.length;
  const r = await rawGraphQL(gateway.url, '{ hang }');
  expect(hanging.length).toBe(hung + 1); // the subgraph did get the fetch, and never answered
  expect(r.status).toBe(200);
  expect(r.body.data).toEqual({ hang: null });
  expect(r.body.errors?.[0]).toMatchObject({
    message: `The probe service did not answer within ${TIMEOUT_MS} ms; try again`,
    extensions: { code: 'SERVICE_UNAVAILABLE', reason: 'SUBGRAPH_TIMEOUT', service: 'probe', timeoutMs: TIMEOUT_MS },
  });
});

test('stop(): a request in flight finishes with its answer; a new connection is refused', async () => {
  const draining = await startGateway({ config: gatewayConfig({ SHUTDOWN_GRACE_MS: '30000' }), supergraphSdl, port: 0, host: '127.0.0.1' });
  const slow = rawGraphQL(draining.url, '{ slow }');
  while (slowAnswers.length === 0) await new Promise((r) => setTimeout(r, 10)); // the fetch is at the subgraph
  const stopped = draining.stop();
  const refused = await new Promise<string>((resolve) => {
    const req = httpRequest(draining.url, { method: 'POST', headers: { 'content-type': 'application/json' } }, () => resolve('answered'));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end('{"query":"{ ping }"}');
  });
  expect(refused).toBe('ECONNREFUSED');
  slowAnswers.shift()!(); // the subgraph answers only now, while the gateway is stopping
  expect((await slow).body).toEqual({ data: { slow: 'finished' } });
  await stopped;
});
