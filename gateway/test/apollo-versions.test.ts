/**
 * The engine builds its own Supergraph and QueryPlanner (@apollo/federation-internals,
 * @apollo/query-planner) beside Apollo Gateway's, and composes with @apollo/composition: all of them
 * must be one federation release, installed once, or plans and composition can disagree silently.
 * Also: the engine reaches Apollo Gateway through its public API only.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const FEDERATION = ['@apollo/composition', '@apollo/federation-internals', '@apollo/query-planner', '@apollo/gateway', '@apollo/subgraph', '@apollo/query-graphs'];
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as { version?: string; dependencies?: Record<string, string> };

/** The package.json a module resolves to, from `fromDir` (as Node resolves it there). */
const resolvedManifest = (name: string, fromDir: string) => require.resolve(`${name}/package.json`, { paths: [fromDir] });

test('every federation package the manifests declare is pinned to one exact version', () => {
  const declared = new Map<string, string>();
  for (const manifest of [
    join(ROOT, 'package.json'),
    join(ROOT, 'gateway/package.json'),
    ...readdirSync(join(ROOT, 'subgraphs')).map((s) => join(ROOT, 'subgraphs', s, 'package.json')),
  ]) {
    for (const [name, range] of Object.entries(json(manifest).dependencies ?? {})) if (FEDERATION.includes(name)) declared.set(`${manifest}: ${name}`, range);
  }
  const versions = new Set(declared.values());
  expect([...versions].length).toBe(1);
  expect([...versions][0]).toMatch(/^\d+\.\d+\.\d+$/);
});

test('the gateway, the engine and composition resolve one installed copy of the planner and of federation-internals, all of that version', () => {
  const version = json(join(ROOT, 'node_modules/@apollo/gateway/package.json')).version;
  const gatewayDir = dirname(resolvedManifest('@apollo/gateway', join(ROOT, 'gateway')));
  const compositionDir = dirname(resolvedManifest('@apollo/composition', ROOT));
  for (const name of ['@apollo/query-planner', '@apollo/federation-internals']) {
    const ours = resolvedManifest(name, join(ROOT, 'gateway'));
    expect([name, resolvedManifest(name, gatewayDir)]).toEqual([name, ours]);
    expect([name, resolvedManifest(name, compositionDir)]).toEqual([name, ours]);
    expect([name, json(ours).version]).toEqual([name, version]);
  }
  expect(json(join(compositionDir, 'package.json')).version).toBe(version);
});

test('the gateway source reads no private member and no unexported file of Apollo Gateway', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const path = join(dir, f);
      return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
    });
  const offending = files(join(ROOT, 'gateway/src')).filter((f) => /@apollo\/gateway\/dist\/|gateway as unknown as|as unknown as ApolloGateway/.test(readFileSync(f, 'utf8')));
  expect(offending).toEqual([]);
});
