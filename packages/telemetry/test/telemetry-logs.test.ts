/**
 * Log correlation: a pino line written while handling an event carries the trace id of the
 * producer's traceparent (Kafka header), a span id and the event's correlation id; a line inside a
 * subgraph request carries the trace the gateway signed; a line outside both carries none.
 */
import { Writable } from 'node:stream';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { createLogger, inServerSpan, noteCorrelation, signedTraceContext, signedTraceHeaders } from '@crm/telemetry';
import { generateKeySet, parsePublicKeys, parseSigningKey } from '@crm/runtime';
import { traceConsume, type DeliveredMessage } from '@crm/events';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: createLogger('test', 'info', stream), lines };
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const message = (traceparent?: string): DeliveredMessage => ({
  topic: 'opportunity.events',
  partition: 1,
  offset: '42',
  key: 'k',
  value: null,
  headers: traceparent ? { traceparent } : {},
});

test('lines inside an event handler carry trace_id, span_id and correlation_id; outside, none', async () => {
  const { logger, lines } = capture();
  await traceConsume('crm-test', message(`00-${TRACE_ID}-00f067aa0ba902b7-01`), async () => {
    noteCorrelation('saga-123');
    logger.info('handling');
  });
  logger.info('idle');
  await new Promise((r) => setImmediate(r));
  expect(lines[0]).toMatchObject({ msg: 'handling', trace_id: TRACE_ID, correlation_id: 'saga-123' });
  expect(lines[0]!.span_id).toMatch(/^[0-9a-f]{16}$/);
  expect(lines[1]!.msg).toBe('idle');
  expect(lines[1]).not.toHaveProperty('trace_id');
  expect(lines[1]).not.toHaveProperty('correlation_id');
});

test('lines inside a subgraph request carry the trace the gateway signed', async () => {
  const { logger, lines } = capture();
  const keys = generateKeySet([]);
  const signer = parseSigningKey(keys.GATEWAY_SIGNING_KEY!);
  const verifyWith = { gateway: parsePublicKeys(keys.GATEWAY_PUBLIC_KEYS!) };
  const gatewaySpan = trace.wrapSpanContext({ traceId: TRACE_ID, spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true });
  const headers = context.with(trace.setSpan(ROOT_CONTEXT, gatewaySpan), () => signedTraceHeaders(signer));
  const req = { method: 'POST', url: '/graphql', headers } as never;
  await inServerSpan(req, { statusCode: 200 } as never, 'opportunity', '/graphql', signedTraceContext(req, verifyWith), async () => {
    logger.info('resolving');
  });
  await new Promise((r) => setImmediate(r));
  expect(lines[0]).toMatchObject({ msg: 'resolving', trace_id: TRACE_ID });
});
