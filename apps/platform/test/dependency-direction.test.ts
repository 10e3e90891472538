/**
 * The dependency direction of docs/architecture.md, checked on every source import of every package
 * under packages/: configuration, errors and telemetry are leaves; database ← events ← runtime ←
 * services. A package's src may import only the packages listed for it here (and never a service:
 * the gateway, a subgraph or the launcher), and a relative import never leaves its package.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT, specifiersOf } from './imports';

/** Package → the packages of ours its src may import. */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  config: [],
  errors: [],
  telemetry: [],
  database: ['config', 'errors', 'telemetry'],
  events: ['config', 'errors', 'telemetry', 'database'],
  runtime: ['config', 'errors', 'telemetry', 'database', 'events'],
  testing: ['config', 'errors', 'telemetry', 'database', 'events', 'runtime'],
  'customer-directory': ['config', 'errors', 'telemetry', 'database', 'events', 'runtime'],
};

const packages = readdirSync(join(ROOT, 'packages'))
  .filter((d) => statSync(join(ROOT, 'packages', d)).isDirectory())
  .sort();

const tsFiles = (dir: string): string[] =>
  !existsSync(dir) ? [] : readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? tsFiles(join(dir, f)) : f.endsWith('.ts') ? [join(dir, f)] : []));

/** Every import of ours in a package's src that breaks the rule, as "file: specifier". */
export function violations(pkg: string, allowed: readonly string[]): string[] {
  const home = join(ROOT, 'packages', pkg);
  const out: string[] = [];
  for (const file of tsFiles(join(home, 'src'))) {
    for (const spec of specifiersOf(file)) {
      const where = `${relative(ROOT, file)}: ${spec}`;
      if (spec.startsWith('.')) {
        if (relative(home, resolve(dirname(file), spec)).startsWith('..')) out.push(where);
      } else if (spec.startsWith('@crm/')) {
        const name = spec.slice('@crm/'.length).split('/')[0]!;
        if (name === pkg || !allowed.includes(name) || spec.includes('/', '@crm/'.length)) out.push(where);
      }
    }
  }
  return out;
}

test('every package has a place in the direction, a README and an index', () => {
  expect(packages).toEqual(Object.keys(MAY_IMPORT).sort());
  for (const pkg of packages) {
    expect([pkg, existsSync(join(ROOT, 'packages', pkg, 'README.md'))]).toEqual([pkg, true]);
    expect([pkg, existsSync(join(ROOT, 'packages', pkg, 'src/index.ts'))]).toEqual([pkg, true]);
  }
});

test.each(packages)('packages/%s imports only the packages below it', (pkg) => {
  expect(violations(pkg, MAY_IMPORT[pkg] ?? [])).toEqual([]);
});

test('the rule allows no circle: each package may import only packages listed before it', () => {
  const order = Object.keys(MAY_IMPORT);
  for (const [pkg, allowed] of Object.entries(MAY_IMPORT)) {
    for (const dep of allowed) expect([pkg, dep, order.indexOf(dep) < order.indexOf(pkg)]).toEqual([pkg, dep, true]);
  }
});

test('the check sees a wrong import (the events path importing the runtime)', () => {
  // the rule itself, held against a package that does import @crm/runtime
  expect(violations('customer-directory', MAY_IMPORT.events!).some((v) => v.endsWith(': @crm/runtime'))).toBe(true);
});
