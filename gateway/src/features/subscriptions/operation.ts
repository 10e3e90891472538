/**
 * A checked subscribe → a prepared live operation. The document has been through every client rule
 * already (parse limit, API-schema validation, depth, aliases, directives, trusted documents, cost
 * and rate limits: ../../pipeline.ts `checkOperation`, the same pipeline as HTTP); here it is only
 * checked for what a live subscription needs (one root field the gateway serves live, declared
 * variables) and rewritten into the query that resolves one event's entity:
 *
 *   subscription S($v: Int) { mine: notificationAdded { ...F title } }  fragment F on Notification { id }
 *   →  query S($__liveEntityId: ID!, $v: Int) { mine: notification(id: $__liveEntityId) { ...F title } }  fragment F …
 *
 * The client's alias (or the field name) is the response key of both, so the query's data is the
 * event's payload as is. Fragments the query no longer uses (e.g. one on Subscription) are dropped.
 */
import { createHash } from 'node:crypto';
import {
  getArgumentValues,
  getVariableValues,
  GraphQLError,
  Kind,
  print,
  validate,
  type DefinitionNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import type { Identity } from '@crm/runtime';
import type { Checked, InternalOperation } from '../../pipeline';
import { liveField, type LiveField } from './topics';

export const ENTITY_ID_VAR = '__liveEntityId';

/** The refusal of a query or mutation sent over WebSocket. */
export const ONLY_SUBSCRIPTIONS = 'Only subscriptions are served over WebSocket; send queries and mutations over HTTP';

export interface LiveOperation {
  field: LiveField;
  /** The response key (client alias or field name). */
  responseKey: string;
  /** The entity query, printed once. */
  query: string;
  /** The entity query, parsed and hashed once: what the gateway executes per event (../../pipeline.ts InternalExecutor). */
  entity?: InternalOperation;
  variables: Record<string, unknown>;
  /** Identical subscriptions (same document, coerced variables and identity) share this key and one resolution per event. */
  shareKey: string;
  /** The root field's arguments, coerced (e.g. notificationAdded's `after`); they are the subscription's, not the entity query's. */
  args?: Record<string, unknown>;
}

const bad = (message: string, code = 'BAD_USER_INPUT') => [new GraphQLError(message, { extensions: { code } })];

/** What a document yields once validated, whatever the variables and identity: cached per schema. */
interface Compiled {
  operation: OperationDefinitionNode;
  field: LiveField;
  responseKey: string;
  entity: InternalOperation;
  /** The root field as written (its arguments are read per subscription, with its variables). */
  root: FieldNode;
  /** The variables the entity query declares (the client's, minus those only the root field's arguments used). */
  entityVariables: readonly string[];
}

const COMPILED_CACHE_SIZE = 500;
const compiledCache = new WeakMap<GraphQLSchema, Map<string, Compiled | readonly GraphQLError[]>>();

export function prepareLiveOperation(
  schema: GraphQLSchema,
  checked: Pick<Checked, 'document' | 'operation' | 'queryHash'>,
  rawVariables: Record<string, unknown> | null | undefined,
  identity: Identity,
): LiveOperation | readonly GraphQLError[] {
  let cache = compiledCache.get(schema);
  if (!cache) compiledCache.set(schema, (cache = new Map()));
  const cacheKey = JSON.stringify([checked.queryHash, checked.operation.name?.value ?? null]);
  let compiled = cache.get(cacheKey);
  if (compiled) {
    cache.delete(cacheKey); // LRU: most recent last
  } else {
    compiled = compile(schema, checked.document, checked.operation);
  }
  cache.set(cacheKey, compiled);
  if (cache.size > COMPILED_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  if (!('entity' in compiled)) return compiled;

  const variables = rawVariables ?? {};
  // Only declared variables: junk ones would otherwise give each subscription its own share key
  // (and its own resolution per event).
  const definitions = compiled.operation.variableDefinitions ?? [];
  const declared = new Set(definitions.map((d) => d.variable.name.value));
  const undeclared = Object.keys(variables).filter((k) => !declared.has(k));
  if (undeclared.length > 0) return bad(`Variables not declared by the operation: ${undeclared.map((k) => `$${k}`).join(', ')}`);
  const coerced = getVariableValues(schema, definitions, variables);
  if (coerced.errors) return coerced.errors;
  const shareKey = createHash('sha256')
    .update(JSON.stringify([compiled.entity.query, definitions.map((d) => coerced.coerced[d.variable.name.value] ?? null), identity.userId, identity.role, identity.email]))
    .digest('base64url');
  const fieldDef = schema.getSubscriptionType()?.getFields()[compiled.field.field];
  let args: Record<string, unknown> = {};
  if (fieldDef) {
    try {
      args = getArgumentValues(fieldDef, compiled.root, coerced.coerced);
    } catch (err) {
      return [err instanceof GraphQLError ? err : new GraphQLError(String(err))];
    }
  }
  const entityVariables = Object.fromEntries(compiled.entityVariables.filter((k) => k in variables).map((k) => [k, variables[k]]));
  return { field: compiled.field, responseKey: compiled.responseKey, query: compiled.entity.query, entity: compiled.entity, variables: entityVariables, shareKey, args };
}

function compile(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode): Compiled | readonly GraphQLError[] {
  if (operation.operation !== 'subscription') {
    return bad(ONLY_SUBSCRIPTIONS);
  }
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const root = rootField(operation.selectionSet, fragments);
  if (!root) return bad('A subscription selects exactly one root field');
  const field = liveField(root.name.value);
  if (!field) return bad(`Subscription.${root.name.value} is not served live by this gateway`);
  if (!schema.getQueryType()?.getFields()[field.entityQuery]) {
    return bad(`Subscription.${field.field} is unavailable: Query.${field.entityQuery} is missing from the supergraph`, 'SERVICE_UNAVAILABLE');
  }
  const responseKey = root.alias?.value ?? root.name.value;
  // The root field's own arguments (e.g. `after`) belong to the subscription: the entity query takes the id only.
  const entityField: FieldNode = {
    kind: Kind.FIELD,
    alias: { kind: Kind.NAME, value: responseKey },
    name: { kind: Kind.NAME, value: field.entityQuery },
    arguments: [{ kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'id' }, value: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: ENTITY_ID_VAR } } }],
    directives: root.directives ?? [],
    ...(root.selectionSet ? { selectionSet: root.selectionSet } : {}),
  };
  const used = usedFragments(entityField.selectionSet, fragments);
  const keptFragments = [...fragments.values()].filter((f) => used.has(f.name.value));
  // Variables only the root field's arguments used are not the entity query's (an unused variable is invalid).
  const usedVars = usedVariables([entityField, ...keptFragments]);
  const query: OperationDefinitionNode = {
    kind: Kind.OPERATION_DEFINITION,
    operation: 'query' as OperationDefinitionNode['operation'],
    ...(operation.name ? { name: operation.name } : {}),
    variableDefinitions: [
      {
        kind: Kind.VARIABLE_DEFINITION,
        variable: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: ENTITY_ID_VAR } },
        type: { kind: Kind.NON_NULL_TYPE, type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'ID' } } },
      },
      ...(operation.variableDefinitions ?? []).filter((v) => v.variable.name.value !== ENTITY_ID_VAR && usedVars.has(v.variable.name.value)),
    ],
    directives: [],
    selectionSet: { kind: Kind.SELECTION_SET, selections: [entityField] },
  };
  const definitions: DefinitionNode[] = [query, ...keptFragments];
  const queryDocument: DocumentNode = { kind: Kind.DOCUMENT, definitions };
  const queryErrors = validate(schema, queryDocument);
  if (queryErrors.length > 0) return queryErrors;
  const entityVariables = (query.variableDefinitions ?? []).map((v) => v.variable.name.value).filter((n) => n !== ENTITY_ID_VAR);
  const printed = print(queryDocument);
  const entity: InternalOperation = {
    document: queryDocument,
    query: printed,
    queryHash: createHash('sha256').update(printed).digest('hex'),
    ...(operation.name ? { operationName: operation.name.value } : {}),
  };
  return { operation, field, responseKey, entity, root, entityVariables };
}

/** The names of the variables used anywhere in these nodes (field arguments, directives, nested values). */
function usedVariables(nodes: readonly (FieldNode | FragmentDefinitionNode)[]): Set<string> {
  const names = new Set<string>();
  const value = (v: ValueNode) => {
    if (v.kind === Kind.VARIABLE) names.add(v.name.value);
    else if (v.kind === Kind.LIST) v.values.forEach(value);
    else if (v.kind === Kind.OBJECT) v.fields.forEach((f) => value(f.value));
  };
  const selections = (set: SelectionSetNode | undefined) => {
    for (const sel of set?.selections ?? []) {
      for (const d of sel.directives ?? []) for (const a of d.arguments ?? []) value(a.value);
      if (sel.kind === Kind.FIELD) {
        for (const a of sel.arguments ?? []) value(a.value);
        selections(sel.selectionSet);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) selections(sel.selectionSet);
    }
  };
  for (const node of nodes) {
    for (const d of node.directives ?? []) for (const a of d.arguments ?? []) value(a.value);
    if (node.kind === Kind.FIELD) for (const a of node.arguments ?? []) value(a.value);
    selections(node.selectionSet);
  }
  return names;
}

/** The one root field of a subscription, looking through root fragments. */
function rootField(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, seen = new Set<string>()): FieldNode | undefined {
  const found: FieldNode[] = [];
  const walk = (s: SelectionSetNode) => {
    for (const sel of s.selections) {
      if (sel.kind === Kind.FIELD) found.push(sel);
      else if (sel.kind === Kind.INLINE_FRAGMENT) walk(sel.selectionSet);
      else if (!seen.has(sel.name.value)) {
        seen.add(sel.name.value);
        const frag = fragments.get(sel.name.value);
        if (frag) walk(frag.selectionSet);
      }
    }
  };
  walk(set);
  const fields = found.filter((f) => f.name.value !== '__typename');
  return fields.length === 1 ? fields[0] : undefined;
}

function usedFragments(set: SelectionSetNode | undefined, fragments: Map<string, FragmentDefinitionNode>): Set<string> {
  const used = new Set<string>();
  const walk = (s: SelectionSetNode | undefined) => {
    for (const sel of s?.selections ?? []) {
      if (sel.kind === Kind.FIELD) walk(sel.selectionSet);
      else if (sel.kind === Kind.INLINE_FRAGMENT) walk(sel.selectionSet);
      else if (!used.has(sel.name.value)) {
        used.add(sel.name.value);
        walk(fragments.get(sel.name.value)?.selectionSet);
      }
    }
  };
  walk(set);
  return used;
}
