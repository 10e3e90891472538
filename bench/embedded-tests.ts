/**
 * The embedded `npm test`'s time on a fixed subset of its suites (the whole suite does not fit a
 * loaded shared 2-core machine twice), or on every suite with SUITES=all: jest in a checkout, with no POSTGRES_URL,
 * KAFKA_BROKERS or REDIS_URL, so every suite runs on the embedded default of that checkout
 * (before: PGlite per subgraph; after: one embedded Postgres for the run).
 *
 *   LABEL=before npx tsx bench/embedded-tests.ts /path/to/checkout
 *
 * Writes bench/results/embedded-tests-<LABEL>.json: wall time, jest's result counts, load averages.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { uptime } from './measure';

const SUBSET = ['subgraphs/opportunity/test/opportunity.test.ts', 'e2e/opportunity-with-customer.test.ts', 'e2e/sagas.test.ts', 'e2e/customer-federation.test.ts'];

export const SUITES = process.env.SUITES === 'all' ? [] : SUBSET;

const checkout = resolve(process.argv[2] ?? join(__dirname, '..'));
const label = process.env.LABEL ?? 'run';
const env: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(POSTGRES_URL|KAFKA_BROKERS|REDIS_URL)$/.test(k)) env[k] = v;
env.NODE_OPTIONS = '--experimental-vm-modules';
const loadBefore = uptime();
const t0 = performance.now();
const scratch = mkdtempSync(join(tmpdir(), 'crm-bench-tests-'));
const outputFile = join(scratch, 'jest.json');
const run = spawnSync(join(checkout, 'node_modules/.bin/jest'), [...SUITES, '--json', '--outputFile', outputFile, '--silent'], {
  cwd: checkout,
  env,
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
});
const seconds = +((performance.now() - t0) / 1000).toFixed(1);
let summary: { numPassedTests: number; numFailedTests: number } | undefined;
try {
  summary = JSON.parse(readFileSync(outputFile, 'utf8')) as typeof summary;
} catch {
  // jest wrote no result
}
rmSync(scratch, { recursive: true, force: true });
const result = {
  checkout,
  suites: SUITES,
  seconds,
  exit: run.status,
  loadBefore,
  loadAfter: uptime(),
  at: new Date().toISOString(),
  passed: summary?.numPassedTests,
  failed: summary?.numFailedTests,
};
writeFileSync(join(__dirname, 'results', `embedded-tests-${label}.json`), `${JSON.stringify(result, null, 2)}\n`);
console.log(result);
if (run.status !== 0) console.error(run.stderr.slice(-3000));
