/**
 * Each workspace declares what it depends on: every package its src (and migrations) imports is in
 * its package.json's dependencies, at the version the lockfile installs (the root's, hoisted), and
 * other workspaces at "*". Nothing but e2e/ and bench/ imports this launcher.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { ROOT, specifiersOf } from './imports';

const json = (path: string) => JSON.parse(readFileSync(join(ROOT, path), 'utf8'));
const lock = json('package-lock.json') as { packages: Record<string, { version?: string }> };
const workspaces = (json('package.json').workspaces as string[]).flatMap((w) =>
  w.endsWith('/*') ? readdirSync(join(ROOT, w.slice(0, -2))).map((d) => `${w.slice(0, -2)}/${d}`) : [w],
);

const tsFiles = (dir: string): string[] =>
  !existsSync(dir) ? [] : readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? tsFiles(join(dir, f)) : f.endsWith('.ts') ? [join(dir, f)] : []));

/** The npm package a bare specifier names (undefined for relative paths and node's own modules). */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]!)) return undefined;
  return specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');
}

/** Package → the files (relative to ROOT) that import it, over the given folders of a workspace. */
function importsOf(workspace: string, folders: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const file of folders.flatMap((f) => tsFiles(join(ROOT, workspace, f)))) {
    for (const name of new Set(
      specifiersOf(file)
        .map(packageOf)
        .filter((n): n is string => n !== undefined),
    )) {
      out.set(name, [...(out.get(name) ?? []), relative(ROOT, file)]);
    }
  }
  return out;
}

test('the workspaces are the packages, the launcher, the gateway and every subgraph', () => {
  expect(workspaces).toEqual(
    expect.arrayContaining([
      'packages/config',
      'packages/errors',
      'packages/telemetry',
      'packages/database',
      'packages/events',
      'packages/runtime',
      'packages/testing',
      'apps/platform',
      'gateway',
      'subgraphs/auth',
      'subgraphs/analytics',
    ]),
  );
});

describe.each(workspaces)('%s', (workspace) => {
  const pkg = json(`${workspace}/package.json`) as { dependencies?: Record<string, string> };
  const declared = pkg.dependencies ?? {};

  test('declares every package its src imports', () => {
    const imported = importsOf(workspace, ['src', 'migrations']);
    expect(imported.size).toBeGreaterThan(0);
    const undeclared = [...imported].filter(([name]) => !(name in declared)).map(([name, files]) => `${name} (${files[0]})`);
    expect(undeclared).toEqual([]);
  });

  test('at the version the lockfile installs; other workspaces at "*"', () => {
    for (const [name, version] of Object.entries(declared)) {
      if (name.startsWith('@crm/')) expect([name, version]).toEqual([name, '*']);
      else expect([name, version]).toEqual([name, lock.packages[`node_modules/${name}`]?.version]);
    }
  });
});

test('no workspace but the launcher imports it (src and tests of the packages, the gateway and every subgraph)', () => {
  const importers = workspaces.filter((w) => w !== 'apps/platform').flatMap((w) => importsOf(w, ['src', 'migrations', 'test']).get('@crm/platform') ?? []);
  expect(importers).toEqual([]);
});
