/**
 * supergraph.yaml (rover's config format): each subgraph's routing URL and schema file. The
 * gateway composes from it; a subgraph running alone reads where its peers answer from it.
 * <NAME>_URL in the environment overrides a routing_url (containers).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { routingUrlOverride } from '@crm/config';

const supergraphConfigSchema = z.object({
  federation_version: z.string().optional(),
  subgraphs: z.record(
    z.string(),
    z.object({
      routing_url: z.string().url(),
      schema: z.object({ file: z.string() }),
    }),
  ),
});

export interface SubgraphRoute {
  name: string;
  url: string;
  /** Absolute path of the subgraph's schema file. */
  schemaFile: string;
}

export class SupergraphConfigError extends Error {}

export function readSubgraphRoutes(configPath: string, env: NodeJS.ProcessEnv = process.env): SubgraphRoute[] {
  const raw = parseYaml(readFileSync(configPath, 'utf8')) as unknown;
  const parsed = supergraphConfigSchema.safeParse(raw);
  if (!parsed.success) throw new SupergraphConfigError(`${configPath}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const base = dirname(resolve(configPath));
  return Object.entries(parsed.data.subgraphs).map(([name, sg]) => ({
    name,
    url: routingUrlOverride(name, env) ?? sg.routing_url,
    schemaFile: resolve(base, sg.schema.file),
  }));
}

/** The nearest supergraph.yaml in `dir` or a directory above it. */
export function findSupergraphConfig(dir: string): string {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const candidate = join(d, 'supergraph.yaml');
    if (existsSync(candidate)) return candidate;
    if (dirname(d) === d) throw new SupergraphConfigError(`no supergraph.yaml in ${dir} or above it`);
  }
}
