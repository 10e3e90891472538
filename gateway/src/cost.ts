/**
 * Static cost estimate of an operation against the API schema (docs/gateway-protection.md):
 *
 *   cost(selection set, S)   = Σ cost(field) over every field of S (fragments expanded)
 *   cost(leaf field)         = 0                              (scalars, enums, __typename)
 *   cost(object field)       = n × (1 + cost(its selection set))
 *   n (list multiplier)      = the field's `first` (or `last`) argument when it has one
 *                              (literal or variable, read from the *coerced* variables: a
 *                              variable's default value counts exactly as if it had been sent;
 *                              the argument's schema default when absent; DEFAULT_LIST_SIZE = 20,
 *                              the subgraphs' default page, when absent or null; MAX_LIST_SIZE =
 *                              100, the subgraphs' maximum page, when it is given but cannot be
 *                              read as a page size);
 *                            | for a list field of a connection (`edges`, `nodes`), the size
 *                              its connection asked for;
 *                            | DEFAULT_LIST_SIZE for any other list field;
 *                            | 1 for a single object.
 *
 * Nested lists multiply. A connection field (one with `first`, whose type is not a list) costs 1
 * and hands its page size down to its `edges`/`nodes`. Every branch of an abstract type counts
 * (an upper bound); @skip/@include are ignored (also an upper bound). Fragment cycles (invalid
 * anyway) are cut. The result is capped at Number.MAX_SAFE_INTEGER.
 */
import {
  Kind,
  getNamedType,
  valueFromAST,
  typeFromAST,
  isInputType,
  getNullableType,
  isCompositeType,
  isListType,
  isObjectType,
  isInterfaceType,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

export const DEFAULT_LIST_SIZE = 20;
/** The subgraphs' maximum page (kit pagination.ts MAX_PAGE): an unreadable size is priced at it. */
export const MAX_LIST_SIZE = 100;

/**
 * The variables as execution will see them: the values sent, and each declared variable's default
 * value where none was sent (graphql-js coerces the same way before executing).
 */
export function coercedVariables(schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...variables };
  for (const def of operation.variableDefinitions ?? []) {
    const name = def.variable.name.value;
    if (Object.prototype.hasOwnProperty.call(variables, name) || !def.defaultValue) continue;
    const type = typeFromAST(schema, def.type as never);
    if (type && isInputType(type)) out[name] = valueFromAST(def.defaultValue, type);
  }
  return out;
}

export function estimateCost(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> = {}): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const root = schema.getRootType(operation.operation);
  if (!root) return 0;
  const values = coercedVariables(schema, operation, variables);

  /** The page size a `first`/`last` argument asks for (undefined: the subgraph's default page). */
  const sizeOf = (value: ValueNode | undefined, fallback: unknown): number | undefined => {
    let raw: unknown;
    if (!value) raw = fallback;
    else if (value.kind === Kind.INT) raw = Number(value.value);
    else if (value.kind === Kind.VARIABLE) raw = values[value.name.value];
    else if (value.kind === Kind.NULL) raw = null;
    else return MAX_LIST_SIZE;
    if (raw === null || raw === undefined) return undefined;
    return typeof raw === 'number' && Number.isInteger(raw) && raw >= 0 ? raw : MAX_LIST_SIZE;
  };

  const fieldOf = (type: GraphQLNamedType, name: string): GraphQLField<unknown, unknown> | undefined =>
    isObjectType(type) || isInterfaceType(type) ? type.getFields()[name] : undefined;

  const walk = (set: SelectionSetNode, parent: GraphQLNamedType, pageSize: number | undefined, seen: Set<string>): number => {
    let total = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.INLINE_FRAGMENT) {
        const on = sel.typeCondition ? (schema.getType(sel.typeCondition.name.value) ?? parent) : parent;
        total += walk(sel.selectionSet, on, pageSize, seen);
      } else if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const name = sel.name.value;
        const frag = fragments.get(name);
        if (!frag || seen.has(name)) continue;
        const on = schema.getType(frag.typeCondition.name.value) ?? parent;
        total += walk(frag.selectionSet, on, pageSize, new Set(seen).add(name));
      } else {
        if (!sel.selectionSet) continue; // leaf: 0
        const field = fieldOf(parent, sel.name.value);
        if (!field) continue; // unknown field: validation refuses it
        const named = getNamedType(field.type);
        if (!isCompositeType(named)) continue;
        const pageArg = field.args.find((a) => a.name === 'first' || a.name === 'last');
        const firstArg = sel.arguments?.find((a) => a.name.value === 'first' || a.name.value === 'last');
        const asked = pageArg ? (sizeOf(firstArg?.value, pageArg.defaultValue) ?? DEFAULT_LIST_SIZE) : undefined;
        const list = isListType(getNullableType(field.type));
        let n = 1;
        let childPage: number | undefined;
        if (list) n = asked ?? pageSize ?? DEFAULT_LIST_SIZE;
        else if (asked !== undefined) childPage = asked; // a connection: its edges/nodes get the size
        total += n * (1 + walk(sel.selectionSet, named, childPage, seen));
      }
      if (total > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
    }
    return total;
  };

  return Math.min(walk(operation.selectionSet, root, undefined, new Set()), Number.MAX_SAFE_INTEGER);
}

/** Rate-limit points for a cost: max(1, ceil(cost / costPerPoint)). */
export function pointsFor(cost: number, costPerPoint: number): number {
  return Math.max(1, Math.ceil(cost / costPerPoint));
}
