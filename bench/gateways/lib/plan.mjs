// Counts the subgraph fetches in Apollo's query plan for the benchmark query.
import { parse } from 'graphql';
import { Supergraph, operationFromDocument } from '@apollo/federation-internals';
import { QueryPlanner } from '@apollo/query-planner';
import { QUERY } from './query.mjs';

export function planFetchCount(supergraphSdl) {
  const supergraph = Supergraph.build(supergraphSdl);
  const planner = new QueryPlanner(supergraph);
  const op = operationFromDocument(supergraph.schema, parse(QUERY));
  const plan = planner.buildQueryPlan(op);
  let fetches = 0;
  const perService = {};
  const walk = (node) => {
    if (!node || typeof node !== 'object') return;
    if (node.kind === 'Fetch') {
      fetches++;
      perService[node.serviceName] = (perService[node.serviceName] ?? 0) + 1;
    }
    for (const v of Object.values(node)) {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object' && v.kind) walk(v);
    }
  };
  walk(plan.node);
  return { fetches, perService };
}
