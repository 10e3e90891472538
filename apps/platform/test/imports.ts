/**
 * The repository's static import graph, as TypeScript resolves it with the root tsconfig.json
 * (the same paths tsx follows at run time): import, export … from, import(), require().
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

export const ROOT = join(__dirname, '../../..');

const { options } = ts.parseJsonConfigFileContent(ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, ROOT);

/** The module specifiers a source file imports. */
export function specifiersOf(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);
}

/** Every repository file (relative to ROOT) a module reaches through static imports, itself included; packages under node_modules are not followed. */
export function reachableFrom(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of specifiersOf(file)) {
      const resolved = ts.resolveModuleName(spec, file, options, ts.sys).resolvedModule?.resolvedFileName;
      if (!resolved || resolved.includes('/node_modules/') || resolved.endsWith('.d.ts') || resolved.endsWith('.json')) continue;
      visit(resolved);
    }
  };
  visit(join(ROOT, entry));
  return [...seen].map((f) => relative(ROOT, f)).sort();
}
