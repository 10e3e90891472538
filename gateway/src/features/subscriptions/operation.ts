/**
 * A subscribe message → a prepared live operation: parsed, validated against the supergraph's API
 * schema with the same limits as HTTP operations (graphql's rules + max depth + estimated cost),
 * and rewritten into the query that resolves one event's entity:
 *
 *   subscription S($v: Int) { mine: notificationAdded { ...F title } }  fragment F on Notification { id }
 *   →  query S($__liveEntityId: ID!, $v: Int) { mine: notification(id: $__liveEntityId) { ...F title } }  fragment F …
 *
 * The client's alias (or the field name) is the response key of both, so the query's data is the
 * event's payload as is. Fragments the query no longer uses (e.g. one on Subscription) are dropped.
 */
import { createHash } from 'node:crypto';
import {
  getArgumentValues, getVariableValues,
  GraphQLError, Kind, getOperationAST, parse, print, specifiedRules, validate,
  type DefinitionNode, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type GraphQLSchema,
  type OperationDefinitionNode, type SelectionSetNode, type ValidationRule, type ValueNode,
} from 'graphql';
import type { Identity } from '@crm/runtime';
import { estimateCost } from '../../cost';
import { liveField, type LiveField } from './topics';

export const ENTITY_ID_VAR = '__liveEntityId';

export interface SubscribePayload {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

export interface LiveOperation {
  field: LiveField;
  /** The response key (client alias or field name). */
  responseKey: string;
  /** The entity query, printed once. */
  query: string;
  variables: Record<string, unknown>;
  /** Identical subscriptions (same document, coerced variables and identity) share this key and one resolution per event. */
  shareKey: string;
  /** The root field's arguments, coerced (e.g. notificationAdded's `after`); they are the subscription's, not the entity query's. */
  args?: Record<string, unknown>;
}

export interface Limits {
  maxDepth: number;
  maxCost: number;
  maxTokens?: number;
}

const bad = (message: string, code = 'BAD_USER_INPUT') => [new GraphQLError(message, { extensions: { code } })];

/** What a document yields once validated, whatever the variables and identity: cached per schema. */
interface Compiled {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  field: LiveField;
  responseKey: string;
  query: string;
  /** The root field as written (its arguments are read per subscription, with its variables). */
  root: FieldNode;
  /** The variables the entity query declares (the client's, minus those only the root field's arguments used). */
  entityVariables: readonly string[];
}

const COMPILED_CACHE_SIZE = 500;
const compiledCache = new WeakMap<GraphQLSchema, Map<string, Compiled | readonly GraphQLError[]>>();

export function prepareLiveOperation(
  schema: GraphQLSchema,
  payload: SubscribePayload,
  identity: Identity,
  limits: Limits,
): (LiveOperation & { document: DocumentNode; /** estimated cost, charged when subscribing */ cost: number }) | readonly GraphQLError[] {
  let cache = compiledCache.get(schema);
  if (!cache) compiledCache.set(schema, (cache = new Map()));
  const cacheKey = JSON.stringify([payload.query, payload.operationName ?? null, limits.maxDepth, limits.maxTokens ?? null]);
  let compiled = cache.get(cacheKey);
  if (compiled) {
    cache.delete(cacheKey); // LRU: most recent last
  } else {
    compiled = compile(schema, payload, limits);
  }
  cache.set(cacheKey, compiled);
  if (cache.size > COMPILED_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  if (!('document' in compiled)) return compiled;

  const variables = payload.variables ?? {};
  // Only declared variables: junk ones would otherwise give each subscription its own share key
  // (and its own resolution per event).
  const definitions = compiled.operation.variableDefinitions ?? [];
  const declared = new Set(definitions.map((d) => d.variable.name.value));
  const undeclared = Object.keys(variables).filter((k) => !declared.has(k));
  if (undeclared.length > 0) return bad(`Variables not declared by the operation: ${undeclared.map((k) => `$${k}`).join(', ')}`);
  const coerced = getVariableValues(schema, definitions, variables);
  if (coerced.errors) return coerced.errors;
  const cost = estimateCost(schema, compiled.document, compiled.operation, variables);
  if (cost > limits.maxCost) return bad(`Operation cost ${cost} exceeds the limit of ${limits.maxCost} (MAX_COST)`);
  const shareKey = createHash('sha256')
    .update(JSON.stringify([compiled.query, definitions.map((d) => coerced.coerced[d.variable.name.value] ?? null), identity.userId, identity.role, identity.email]))
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
  return { field: compiled.field, responseKey: compiled.responseKey, query: compiled.query, variables: entityVariables, shareKey, args, cost, document: compiled.document };
}

function compile(schema: GraphQLSchema, payload: SubscribePayload, limits: Limits): Compiled | readonly GraphQLError[] {
  let document: DocumentNode;
  try {
    document = parse(payload.query, limits.maxTokens ? { maxTokens: limits.maxTokens } : {});
  } catch (err) {
    return [err instanceof GraphQLError ? err : new GraphQLError(String(err))];
  }
  const errors = validate(schema, document, [...specifiedRules, maxDepthRule(limits.maxDepth)]);
  if (errors.length > 0) return errors;
  const operation = getOperationAST(document, payload.operationName ?? undefined);
  if (!operation) return bad('Unable to identify the operation (give operationName when the document has several)');
  if (operation.operation !== 'subscription') {
    return bad('Only subscriptions are served over WebSocket; send queries and mutations over HTTP');
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
  return { document, operation, field, responseKey, query: print(queryDocument), root, entityVariables };
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

/**
 * Max depth (MAX_DEPTH, same number as HTTP's operation-limits feature): field nesting with
 * fragments expanded; the subscription root field counts as depth 1 like a query's root field.
 */
export function maxDepthRule(max: number): ValidationRule {
  return (context) => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    return {
      Document(node) {
        for (const def of node.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
      },
      OperationDefinition(node) {
        const depthOf = (set: SelectionSetNode | undefined, stack: Set<string>): number => {
          let deepest = 0;
          for (const sel of set?.selections ?? []) {
            if (sel.kind === Kind.FIELD) {
              if (sel.name.value.startsWith('__')) continue;
              deepest = Math.max(deepest, 1 + depthOf(sel.selectionSet, stack));
            } else if (sel.kind === Kind.INLINE_FRAGMENT) {
              deepest = Math.max(deepest, depthOf(sel.selectionSet, stack));
            } else if (!stack.has(sel.name.value)) {
              const next = new Set(stack).add(sel.name.value);
              deepest = Math.max(deepest, depthOf(fragments.get(sel.name.value)?.selectionSet, next));
            }
            if (deepest > max) return deepest;
          }
          return deepest;
        };
        const depth = depthOf(node.selectionSet, new Set());
        if (depth > max) {
          context.reportError(new GraphQLError(`Query depth limit of ${max} exceeded, found ${depth}. (MAX_DEPTH)`, { extensions: { code: 'BAD_USER_INPUT', limit: 'MAX_DEPTH' } }));
        }
      },
    };
  };
}
