/** One jest run over every workspace: unit tests beside each package, e2e stories in e2e/. */
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
    '/node_modules/@platformatic/.+\\.js$': '<rootDir>/jest.esm-transform.js',
  },
  // the Kafka client ships ES modules only (see jest.esm-transform.js)
  transformIgnorePatterns: ['/node_modules/(?!@platformatic/)'],
  testMatch: ['<rootDir>/{packages,apps,gateway,subgraphs}/**/test/**/*.test.ts', '<rootDir>/e2e/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/bench/'],
  // generous: a whole stack (five databases migrated, six services) starts slowly on a busy 2-core machine
  testTimeout: 180_000,
  maxWorkers: 2,
  // A worker whose heap stays above 1 GB after a suite is replaced before the next one: stacks leave
  // module-level state behind (Apollo, MikroORM metadata, OpenTelemetry), and a Node 20 CI run once stalled
  // with one worker at 3.8 GB and a suite that never reported.
  workerIdleMemoryLimit: '1GB',
  // Without POSTGRES_URL one embedded Postgres serves the run; a real broker is made usable once,
  // before suites race to provision topics on it.
  globalSetup: '<rootDir>/apps/platform/src/jest-global-setup.ts',
  globalTeardown: '<rootDir>/apps/platform/src/jest-global-teardown.ts',
  // No forceExit: a suite closes what it opens (stack.stop() closes servers, pools, buses, timers),
  // so jest exits by itself; `--detectOpenHandles` names whatever is left open.
};
