/**
 * Composition of supergraph.yaml (rover's config format) with @apollo/composition. Errors name
 * the subgraph and the message and fail loudly; nothing half-composed is ever written.
 */
import { readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { readSubgraphRoutes } from '@crm/runtime';

export interface SubgraphSource {
  name: string;
  url: string;
  typeDefs: string;
}

export class CompositionError extends Error {}

/** Each subgraph of supergraph.yaml (kit supergraph-config.ts) with its schema's text. */
export function readSupergraphConfig(configPath: string, env?: NodeJS.ProcessEnv): SubgraphSource[] {
  return readSubgraphRoutes(configPath, env).map((r) => ({ name: r.name, url: r.url, typeDefs: readFileSync(r.schemaFile, 'utf8') }));
}

export function composeSupergraph(subgraphs: SubgraphSource[]): string {
  const services = subgraphs.map((s) => {
    try {
      return { name: s.name, url: s.url, typeDefs: parse(s.typeDefs) };
    } catch (err) {
      throw new CompositionError(`subgraph "${s.name}": schema does not parse: ${(err as Error).message}`);
    }
  });
  const result = composeServices(services);
  if (result.errors) {
    const lines = result.errors.map((e) => {
      const where = e.nodes
        ?.map((n) => n.loc?.source.name)
        .filter(Boolean)
        .join(', ');
      return `  - ${e.message}${where ? ` (${where})` : ''}`;
    });
    throw new CompositionError(`Supergraph composition failed:\n${lines.join('\n')}`);
  }
  return result.supergraphSdl;
}

/** Subgraph name → routing URL, read back from a composed supergraph. */
export function subgraphUrls(supergraphSdl: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of supergraphSdl.matchAll(/@join__graph\(name:\s*"([^"]+)",\s*url:\s*"([^"]+)"\)/g)) {
    if (m[1] && m[2]) out[m[1]] = m[2];
  }
  return out;
}
