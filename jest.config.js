/** One jest run over every workspace: unit tests beside each package, e2e stories in e2e/. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] },
  testMatch: ['<rootDir>/{packages,apps,gateway,subgraphs}/**/test/**/*.test.ts', '<rootDir>/e2e/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/bench/'],
  // generous: a whole embedded stack (five PGlite databases) starts slowly on a busy 2-core machine
  testTimeout: 180_000,
  maxWorkers: 2,
  // A real broker is made usable once, before suites race to provision topics on it.
  globalSetup: '<rootDir>/apps/platform/src/jest-global-setup.ts',
  // No forceExit: a suite closes what it opens (stack.stop() closes servers, pools, buses, timers),
  // so jest exits by itself; `--detectOpenHandles` names whatever is left open.
};
