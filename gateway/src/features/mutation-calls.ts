/**
 * The root fields of a mutation that a protection counts (login, the password mutations), each with
 * its arguments as the resolver will see them: coerced against the schema with the request's
 * variables (inline values, variables and variable defaults alike), through inline fragments and
 * fragment spreads, so no spelling of the operation slips past the counters.
 */
import { getArgumentValues, getVariableValues, Kind, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';

export interface MutationCall {
  field: string;
  responseKey: string;
  /** The coerced arguments; empty when they do not coerce (the request fails validation anyway). */
  args: Record<string, unknown>;
}

export function mutationCalls(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  fragments: Record<string, FragmentDefinitionNode>,
  rawVariables: Record<string, unknown>,
  names: readonly string[],
): MutationCall[] {
  if (operation.operation !== 'mutation') return [];
  const fields = schema.getMutationType()?.getFields();
  if (!fields) return [];
  const variables = getVariableValues(schema, operation.variableDefinitions ?? [], rawVariables).coerced ?? {};
  const calls: MutationCall[] = [];
  const walk = (set: SelectionSetNode, seen: Set<string>) => {
    for (const sel of set.selections) {
      if (sel.kind === Kind.INLINE_FRAGMENT) walk(sel.selectionSet, seen);
      else if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const frag = fragments[sel.name.value];
        if (frag && !seen.has(sel.name.value)) walk(frag.selectionSet, new Set(seen).add(sel.name.value));
      } else if (names.includes(sel.name.value) && fields[sel.name.value]) {
        let args: Record<string, unknown> = {};
        try {
          args = getArgumentValues(fields[sel.name.value]!, sel, variables);
        } catch {
          args = {};
        }
        calls.push({ field: sel.name.value, responseKey: sel.alias?.value ?? sel.name.value, args });
      }
    }
  };
  walk(operation.selectionSet, new Set());
  return calls;
}
