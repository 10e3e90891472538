/** Every subgraph this platform runs, with its port in supergraph.yaml. */
import type { SubgraphDefinition } from '@crm/kit';
import { authSubgraph } from '@crm/subgraph-auth';
import { salesActivitySubgraph } from '@crm/subgraph-sales-activity';

export const SUBGRAPHS: SubgraphDefinition<any>[] = [authSubgraph, salesActivitySubgraph];

export function subgraphByName(name: string): SubgraphDefinition<any> {
  const found = SUBGRAPHS.find((s) => s.name === name);
  if (!found) throw new Error(`Unknown subgraph "${name}"; known: ${SUBGRAPHS.map((s) => s.name).join(', ')}`);
  return found;
}
