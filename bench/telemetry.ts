/**
 * What telemetry adds to one GraphQL request, measured on the kit's own hooks (no network, no
 * database): the server span around the request, the Apollo plugin (parse/validate spans,
 * operation metrics) and the signed trace headers of one subgraph fetch.
 *
 *   npx tsx bench/telemetry.ts            # N=20000 requests per round, ROUNDS=5
 *
 * Three runs, one process, in this order: "hooks only" (the same work with telemetry's calls
 * replaced by nothing), "no exporter" (the default: metrics on, spans are the API's no-op), and
 * "exporting" (a tracer provider with a batch processor whose exporter discards the spans).
 * Medians of the rounds, µs per request. Writes bench/results/telemetry.md and .json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { GraphQLRequestListener } from '@apollo/server';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ensureTraceContext, graphqlTelemetryPlugin, inServerSpan, setupTelemetry, signedTraceHeaders } from '@crm/telemetry';
import { gatewaySigningKey } from '@crm/runtime';
import { readConfig } from '@crm/config';

const N = Number(process.env.N ?? 20_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const config = readConfig({});
const req = { method: 'POST', url: '/graphql', headers: {} } as IncomingMessage;
const res = { statusCode: 200 } as ServerResponse;
const plugin = graphqlTelemetryPlugin('bench');
const op = { operation: { operation: 'query' }, operationName: 'Customers' };
const done = { response: { body: { kind: 'single', singleResult: {} } }, errors: undefined };

/** The same sequence of Apollo hook calls with empty hooks: what any plugin costs. */
const empty = {
  async requestDidStart() {
    return {
      async parsingDidStart() {
        return async () => undefined;
      },
      async validationDidStart() {
        return async () => undefined;
      },
      async didResolveOperation() {
        return undefined;
      },
      async willSendResponse() {
        return undefined;
      },
    };
  },
};

async function hooks(p: typeof plugin | typeof empty, fetchHeaders: () => unknown): Promise<void> {
  const l = (await p.requestDidStart!({ contextValue: {} } as never)) as GraphQLRequestListener<never>;
  await (
    await l.parsingDidStart!({} as never)
  )?.();
  await (
    await l.validationDidStart!({} as never)
  )?.([]);
  await l.didResolveOperation!(op as never);
  fetchHeaders();
  await l.willSendResponse!(done as never);
}

const instrumented = () => inServerSpan(req, res, 'bench', '/graphql', undefined, () => hooks(plugin, () => signedTraceHeaders(gatewaySigningKey(config))));
const bare = () => hooks(empty, () => undefined);

async function measure(fn: () => Promise<void>): Promise<number> {
  const rounds: number[] = [];
  for (let i = 0; i < 2000; i++) await fn(); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await fn();
    rounds.push(Number(process.hrtime.bigint() - start) / 1000 / N);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)]!;
}

async function main() {
  ensureTraceContext();
  const hooksOnly = await measure(bare);
  const noExporter = await measure(instrumented);
  const discard: SpanExporter = { export: (_spans, cb) => cb({ code: 0 }), shutdown: async () => undefined };
  const telemetry = setupTelemetry({ serviceName: 'bench', config, spanExporter: discard });
  const exporting = await measure(instrumented);
  await telemetry.shutdown();

  const rows = [
    ['hooks only (baseline)', hooksOnly],
    ['no exporter (default)', noExporter],
    ['exporting (batch, discarded)', exporting],
  ] as const;
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}, node ${process.version}`;
  const md = [
    `# Telemetry overhead per request (${new Date().toISOString()})`,
    '',
    `${machine}; ${N} requests × ${ROUNDS} rounds, median µs per request (bench/telemetry.ts).`,
    '',
    '| mode | µs per request | added vs baseline |',
    '|---|---|---|',
    ...rows.map(([name, us]) => `| ${name} | ${us.toFixed(2)} | ${(us - hooksOnly).toFixed(2)} |`),
    '',
  ].join('\n');
  const dir = process.env.RESULTS_DIR ?? join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'telemetry.md'), md);
  writeFileSync(join(dir, 'telemetry.json'), JSON.stringify({ date: new Date().toISOString(), machine, N, ROUNDS, microsPerRequest: Object.fromEntries(rows) }, null, 2) + '\n');
  console.log(md);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
