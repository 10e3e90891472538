/**
 * One trace from the client to the subscriber (real Kafka and Postgres in CI): requestApproval
 * through the gateway → the opportunity subgraph's resolver and its SQL → the outbox row's
 * traceparent → the relay's publish (Kafka header) → the analytics consumer (linked to the
 * producer) → its notification.created → the gateway's live consumer → the delivery over
 * WebSocket. Spans go to an in-memory exporter; the test reads them back by trace id.
 */
import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { eventually } from '@crm/testing';
import { gatewayPublicKeys, gatewaySigningKey, servicePublicKeys } from '@crm/runtime';
import { readConfig } from '@crm/config';
import { setupTelemetry, signedTraceContext, signedTraceHeaders, TRACE_SIGNATURE_HEADER, type Telemetry } from '@crm/telemetry';
import { startTestStack, type TestStack } from '@crm/platform';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let stack: TestStack;
let client: Client | undefined;

beforeAll(async () => {
  telemetry = setupTelemetry({ serviceName: 'crm-test', config: readConfig(), spanExporter: exporter });
  stack = await startTestStack();
}, 180_000);
afterAll(async () => {
  await client?.dispose();
  await stack?.stop();
  await telemetry?.shutdown();
});

const REQUEST = `mutation RequestApproval($input: RequestApprovalInput!) { requestApproval(input: $input) { id status } }`;

test('requestApproval through the gateway is one trace down to the WebSocket delivery of the notification', async () => {
  const sales = await stack.user('SALES', 'Tess Tracer');
  const manager = await stack.user('MANAGER', 'Mo Monitor');
  const created = await sales.gql(`mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }`, { input: { name: `Traced ${randomUUID().slice(0, 6)}` } });
  const customerId = created.data.createCustomer.id as string;

  const received: { type: string; title: string }[] = [];
  client = createClient({
    url: stack.gatewayUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${manager.token}` },
  });
  client.subscribe<{ notificationAdded: { type: string; title: string } }>(
    { query: 'subscription { notificationAdded { type title } }' },
    { next: (r) => void (r.data && received.push(r.data.notificationAdded)), error: () => undefined, complete: () => undefined },
  );
  const stats = stack.gatewayUrl.replace(/\/graphql$/, '/graphql/live-stats');
  await eventually(async () => ((await (await fetch(stats)).json()) as { subscriptions: number }).subscriptions >= 1, { timeoutMs: 30_000 });

  // The opportunity subgraph learns of the customer by event: retry until it knows it.
  const title = `Traced deal ${randomUUID().slice(0, 6)}`;
  const requestId = await eventually(async () => (await sales.gql(REQUEST, { input: { customerId, title, amount: 100 } })).data?.requestApproval?.id as string | undefined, {
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  expect(requestId).toBeTruthy();
  await eventually(async () => received.find((n) => n.type === 'APPROVAL_REQUESTED' && n.title.includes(title)), { timeoutMs: 30_000 });

  // The delivery span ends right after the push to the socket's queue (a background effect).
  const trace = await eventually(
    async () => {
      const spans = exporter.getFinishedSpans();
      const resolver = spans.find(
        (s) =>
          s.name === 'resolve Mutation.requestApproval' &&
          s.status.code !== 2 &&
          spans.some((p) => p.spanContext().traceId === s.spanContext().traceId && p.name === 'deliver notificationAdded'),
      );
      return resolver ? spans.filter((s) => s.spanContext().traceId === resolver.spanContext().traceId) : undefined;
    },
    { timeoutMs: 30_000 },
  );

  const one = (predicate: (s: ReadableSpan) => boolean, what: string): ReadableSpan => {
    const found = trace.find(predicate);
    if (!found) throw new Error(`no ${what} in the trace: ${trace.map((s) => s.name).join(', ')}`);
    return found;
  };
  const byId = new Map(trace.map((s) => [s.spanContext().spanId, s]));
  const ancestors = (s: ReadableSpan): ReadableSpan[] => {
    const out: ReadableSpan[] = [];
    for (let p = s.parentSpanContext && byId.get(s.parentSpanContext.spanId); p; p = p.parentSpanContext && byId.get(p.parentSpanContext.spanId)) out.push(p);
    return out;
  };

  // The gateway's request is the root, named after the operation, with parse, validate, plan and fetch.
  const root = one((s) => s.kind === SpanKind.SERVER && s.attributes['crm.service'] === 'gateway', 'gateway request');
  expect(root.parentSpanContext).toBeUndefined();
  expect(root.name).toBe('mutation RequestApproval');
  expect(root.attributes['graphql.operation.name']).toBe('RequestApproval');
  for (const name of ['graphql.parse', 'graphql.validate', 'gateway.plan', 'gateway.fetch']) one((s) => s.name === name, name);

  // The opportunity subgraph continued the gateway's (signed) trace context: its server span, resolver and SQL.
  const server = one((s) => s.kind === SpanKind.SERVER && s.attributes['crm.service'] === 'opportunity', 'opportunity request');
  expect(ancestors(server)).toContain(root);
  const resolver = one((s) => s.name === 'resolve Mutation.requestApproval', 'resolver');
  expect(ancestors(resolver)).toContain(server);
  const sql = trace.filter((s) => s.attributes['db.system.name'] === 'postgresql' && ancestors(s).includes(resolver));
  expect(sql.map((s) => String(s.attributes['db.query.text']))).toEqual(expect.arrayContaining([expect.stringMatching(/insert into "outbox"/i)]));
  // Each subgraph has its own database on the server (the embedded default's too): the outbox row is
  // opportunity's, and the read-through that confirmed the customer with its owner is in the trace
  // too, as the customer subgraph's request with its own SQL.
  const outboxInsert = sql.find((s) => /insert into "outbox"/i.test(String(s.attributes['db.query.text'])))!;
  expect(String(outboxInsert.attributes['db.namespace'])).toMatch(/opportunity$/);
  const readThrough = one((s) => s.kind === SpanKind.SERVER && s.attributes['crm.service'] === 'customer', 'customer read-through');
  expect(ancestors(readThrough)).toContain(resolver);
  expect(sql.filter((s) => ancestors(s).includes(readThrough)).map((s) => String(s.attributes['db.namespace']))).toEqual(
    expect.arrayContaining([expect.stringMatching(/customer$/)]),
  );

  // The outbox row's traceparent → the relay's PRODUCER span → the analytics CONSUMER span, linked to it.
  const publish = one((s) => s.kind === SpanKind.PRODUCER && s.name === 'publish opportunity.events', 'outbox publish');
  expect(ancestors(publish)).toContain(resolver);
  const consumed = one(
    (s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.consumer.group.name'] === 'crm-analytics' && s.attributes['crm.event.type'] === 'approval.requested',
    'analytics handling',
  );
  expect(consumed.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
  expect(consumed.links.map((l) => l.context.spanId)).toEqual([publish.spanContext().spanId]);
  expect(consumed.attributes['crm.event.outcome']).toBe('handled');
  expect(consumed.attributes['crm.correlation_id']).toBeTruthy();

  // analytics' notification.created → the gateway's live consumer → the delivery to the subscriber.
  const delivered = one((s) => s.name === 'deliver notificationAdded', 'WebSocket delivery');
  const chain = ancestors(delivered).map((s) => s.name);
  expect(chain).toEqual([
    'process notification.events', // the gateway's live consumer
    'publish notification.events', // analytics' outbox relay
    'process opportunity.events', // analytics' handling of approval.requested
    'publish opportunity.events',
    'resolve Mutation.requestApproval',
    'mutation RequestApproval__opportunity__0', // the opportunity subgraph's request
    'gateway.fetch',
    'gateway.execute',
    'gateway.request',
    'mutation RequestApproval', // the gateway's request
  ]);
  expect(ancestors(delivered)).toContain(consumed);
  expect(ancestors(delivered)[0]!.attributes['messaging.consumer.group.name']).toBe('gateway-live');
  expect(delivered.attributes['crm.subscribers']).toBe(1);
});

test('a subgraph continues only a trace context the gateway signed', () => {
  const config = readConfig();
  const signer = gatewaySigningKey(config);
  const keys = { gateway: gatewayPublicKeys(config), services: servicePublicKeys(config) };
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const req = (headers: Record<string, string>) => ({ headers }) as never;
  expect(signedTraceContext(req({ traceparent }), keys)).toBeUndefined();
  expect(signedTraceContext(req({ traceparent, [TRACE_SIGNATURE_HEADER]: 'forged' }), keys)).toBeUndefined();
  const remote = trace.wrapSpanContext({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true });
  const signed = context.with(trace.setSpan(ROOT_CONTEXT, remote), () => signedTraceHeaders(signer));
  expect(signed.traceparent).toBe(traceparent);
  const continued = signedTraceContext(req(signed), keys);
  expect(continued && trace.getSpanContext(continued)?.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
  // The signature covers the traceparent: another trace id under the same signature is refused.
  expect(signedTraceContext(req({ ...signed, traceparent: traceparent.replace('0af7', '1af7') }), keys)).toBeUndefined();
});
