/**
 * One autocannon run in its own process (so the load generator does not share the event loop
 * of the stack it measures). Input: a JSON file path (argv[2]) with
 *   { url, connections, duration, warmup, entries: [{ body, authorization? }] }
 * Requests rotate over `entries`; "__N__" in a body is replaced by a unique counter (unique names
 * for createCustomer). A 2xx response whose body has GraphQL `errors` counts as a GraphQL error.
 * Prints one JSON line: { warmup: {...}, measured: {...} }.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let counter = 0;

async function run(duration) {
  let gqlErrors = 0;
  let sample;
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration,
    timeout: 60,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const n = counter++;
          const e = spec.entries[n % spec.entries.length];
          return {
            ...req,
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(e.authorization ? { authorization: e.authorization } : {}) },
            body: e.body.replace(/__N__/g, String(n)),
          };
        },
        onResponse: (status, body) => {
          if (status >= 200 && status < 300 && body.includes('"errors"')) {
            gqlErrors += 1;
            sample ??= body.slice(0, 300);
          } else if (status >= 300) {
            sample ??= `HTTP ${status}: ${body.slice(0, 300)}`;
          }
        },
      },
    ],
  });
  const l = result.latency;
  return {
    duration,
    requests: result.requests.total,
    rps: result.requests.average,
    latency: { p50: l.p50, p90: l.p90, p99: l.p99, max: l.max, mean: l.average },
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    gqlErrors,
    sampleError: sample ?? null,
  };
}

const warmup = spec.warmup > 0 ? await run(spec.warmup) : null;
const measured = await run(spec.duration);
process.stdout.write(`${JSON.stringify({ warmup, measured })}\n`);
