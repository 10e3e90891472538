/** Every subgraph this platform runs, with its port in supergraph.yaml. */
import type { SubgraphDefinition } from '@crm/runtime';
import { analyticsSubgraph } from '@crm/subgraph-analytics';
import { authSubgraph } from '@crm/subgraph-auth';
import { customerSubgraph } from '@crm/subgraph-customer';
import { opportunitySubgraph } from '@crm/subgraph-opportunity';
import { salesActivitySubgraph } from '@crm/subgraph-sales-activity';

export const SUBGRAPHS: SubgraphDefinition<any>[] = [authSubgraph, customerSubgraph, opportunitySubgraph, salesActivitySubgraph, analyticsSubgraph];

export function subgraphByName(name: string): SubgraphDefinition<any> {
  const found = SUBGRAPHS.find((s) => s.name === name);
  if (!found) throw new Error(`Unknown subgraph "${name}"; known: ${SUBGRAPHS.map((s) => s.name).join(', ')}`);
  return found;
}
