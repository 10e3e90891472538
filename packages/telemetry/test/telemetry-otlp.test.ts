/**
 * The production path of traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans leave the process as
 * OTLP/HTTP to <endpoint>/v1/traces (a local receiver stands in for Jaeger); without it, nothing is
 * registered and spans are the API's no-op.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace } from '@opentelemetry/api';
import { readConfig } from '@crm/config';
import { setupTelemetry, tracer, tracingEnabled } from '@crm/telemetry';

let server: Server;
const received: { path: string; type: string; bytes: number }[] = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      received.push({ path: req.url ?? '', type: String(req.headers['content-type']), bytes });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

test('no endpoint: no provider, spans record nothing', () => {
  const t = setupTelemetry({ serviceName: 'crm-test', config: readConfig({}) });
  expect(t.tracing).toBe(false);
  expect(tracingEnabled()).toBe(false);
  expect(tracer().startSpan('x').isRecording()).toBe(false);
});

test('with OTEL_EXPORTER_OTLP_ENDPOINT, spans are exported over OTLP/HTTP to /v1/traces', async () => {
  const { port } = server.address() as AddressInfo;
  const t = setupTelemetry({ serviceName: 'crm-test', config: readConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/` }) });
  expect(t.tracing).toBe(true);
  const span = tracer().startSpan('exported');
  expect(span.isRecording()).toBe(true);
  span.end();
  await t.shutdown(); // flushes the batch
  expect(received.length).toBeGreaterThanOrEqual(1);
  expect(received[0]).toMatchObject({ path: '/v1/traces' });
  expect(received[0]!.bytes).toBeGreaterThan(0);
  expect(trace.getTracer('after').startSpan('y').isRecording()).toBe(false);
});
