/**
 * Each deployable's entry loads only what it runs: a subgraph's container (subgraphs/<name>/src/main.ts)
 * never reaches another subgraph, the gateway or this launcher; the gateway's never reaches a
 * subgraph or the launcher. Checked on the static import graph (imports.ts).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, reachableFrom } from './imports';

const subgraphs = readdirSync(join(ROOT, 'subgraphs'));

test('the walk follows workspace imports: the launcher reaches every subgraph and the gateway', () => {
  const reached = reachableFrom('apps/platform/src/main.ts');
  for (const name of subgraphs) expect(reached).toContain(`subgraphs/${name}/src/index.ts`);
  expect(reached).toContain('gateway/src/server.ts');
});

describe.each(subgraphs)('subgraphs/%s/src/main.ts', (name) => {
  const reached = reachableFrom(`subgraphs/${name}/src/main.ts`);

  test('runs its own subgraph through the runtime', () => {
    expect(reached).toContain(`subgraphs/${name}/src/index.ts`);
    expect(reached).toContain('packages/runtime/src/run-subgraph.ts');
  });

  test('reaches no other subgraph, no gateway code and not the launcher', () => {
    const foreign = reached.filter((f) => (f.startsWith('subgraphs/') && !f.startsWith(`subgraphs/${name}/`)) || f.startsWith('gateway/') || f.startsWith('apps/'));
    expect(foreign).toEqual([]);
  });
});

test('gateway/src/main.ts reaches no subgraph and not the launcher', () => {
  const reached = reachableFrom('gateway/src/main.ts');
  expect(reached).toContain('gateway/src/server.ts');
  expect(reached.filter((f) => f.startsWith('subgraphs/') || f.startsWith('apps/'))).toEqual([]);
});
