/**
 * The gateway's execution engine. Apollo Gateway still loads and reloads the supergraph and builds
 * the subgraph clients; the engine takes its place as Apollo Server's executor (what Apollo Server
 * calls with a parsed, validated operation) through public surfaces only: it wraps the gateway in a
 * GatewayInterface of its own, learns each supergraph from `onSchemaLoadOrUpdate`, builds its own
 * `Supergraph`, API schema and `QueryPlanner` from it (@apollo/federation-internals,
 * @apollo/query-planner), and gets the subgraph clients as `buildService` makes them:
 * - everything that depends on the document alone is prepared once per document hash and
 *   operation name (operation context, query plan, the API-schema operation, the shaping program)
 *   instead of per request (Apollo re-derives the operation from the document on every request);
 * - the plan runs on our own interpreter: fetches through the gateway's subgraph clients (the
 *   pooled, signing SubgraphClient of ../datasource.ts), results merged in place, no tracing objects;
 * - the response is shaped by a program compiled per operation (./shape.ts) with the same output,
 *   null propagation and errors as Apollo's result shaping.
 * Errors, nulls and `extensions` come out as Apollo Gateway's executor makes them: the same plan
 * semantics (Sequence, Parallel, Flatten, Fetch, Condition), the same subgraph error mapping and
 * paths. Operations with schema introspection (`__schema`, `__type`) go to Apollo Gateway's own
 * executor (what `load()` returned). No private member and no unexported file of Apollo Gateway is read
 * (gateway/test/apollo-versions.test.ts pins the planner and composition versions together).
 */
import { buildOperationContext, type ApolloGateway, type GraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ERRORS, errorCodeDef, operationFromDocument, Supergraph, type Operation, type Schema } from '@apollo/federation-internals';
import {
  evaluateCondition,
  getResponseName,
  QueryPlanner,
  type FetchNode,
  type PlanNode,
  type QueryPlan,
  type QueryPlanSelectionNode,
  type ResponsePath,
} from '@apollo/query-planner';
import type { GatewayExecutionResult, GatewayExecutor, GatewayGraphQLRequestContext, GatewayInterface } from '@apollo/server-gateway-interface';
import { getVariableValues, GraphQLError, Kind, visit, type GraphQLSchema } from 'graphql';
import { trace } from '@opentelemetry/api';
import { withSpan } from '@crm/telemetry';
import { SubgraphClient, type GatewayContext } from '../datasource';
import { applyRewrites, hydratedPaths, isObjectOfType } from './rewrites';
import { compileShape, setOwn, shapeResponse, type ShapeProgram } from './shape';

type OperationContext = ReturnType<typeof buildOperationContext>;
type RequestContext = GatewayGraphQLRequestContext;

/** What one supergraph gives the engine, built from its SDL with the public federation APIs. */
interface SupergraphState {
  /** The API schema as GraphQL-JS (Apollo Server's, from onSchemaLoadOrUpdate). */
  schema: GraphQLSchema;
  apiSchema: Schema;
  supergraphSchema: GraphQLSchema;
  planner: QueryPlanner;
}

function supergraphState(schema: GraphQLSchema, coreSupergraphSdl: string): SupergraphState {
  // Apollo Gateway validated this SDL before announcing it; build it again for the engine's own planner.
  const supergraph = Supergraph.build(coreSupergraphSdl, { validateSupergraph: false });
  return { schema, apiSchema: supergraph.apiSchema(), supergraphSchema: supergraph.schema.toGraphQLJSSchema(), planner: new QueryPlanner(supergraph) };
}

/** The value of GraphQLDataSourceRequestKind.INCOMING_OPERATION (the enum itself is not exported by @apollo/gateway). */
const INCOMING_OPERATION = 'incoming operation' as GraphQLDataSourceProcessOptions['kind'];

/** Everything about one document (and operation name) under one schema. */
interface Prepared {
  operationContext: OperationContext;
  /** Set once the first request passed variable validation (the plan is built lazily, as Apollo does). */
  planned?: {
    plan: QueryPlan;
    /** The operation against the API schema, or the error Apollo would answer with. */
    operation: Operation | GraphQLError;
    shape?: ShapeProgram;
    introspection: boolean;
  };
}

const MAX_PREPARED = 2000;

interface Cursor {
  path: ResponsePath;
  data: unknown;
  fullResult: Record<string, unknown>;
}

interface Execution {
  rc: RequestContext;
  operation: Operation;
  services: ReadonlyMap<string, GraphQLDataSource>;
  supergraphSchema: GraphQLSchema;
  errors: GraphQLError[];
  /**
   * Copy on write. Set once an answer shared with other operations (SubgraphClient.processShared)
   * joins this operation's merged data: from then on every object or list written into must be in
   * this set (the root, and copies made on the way down); anything else is copied first and the copy
   * put in its parent's place. Undefined: every object is this operation's own (nothing is copied).
   */
  owned?: WeakSet<object>;
  root: Record<string, unknown>;
  /**
   * The entities of the fetches in flight (found, not yet merged into). They were found before copy
   * on write began, so they are this operation's own: when it begins, they join `owned`.
   */
  pending: Set<Record<string, unknown>[]>;
}

export interface PlanExecutorStats {
  /** Requests executed by the engine, and those handed to Apollo's executor (introspection). */
  engine: number;
  apollo: number;
  prepared: number;
}

/**
 * The spans Apollo Gateway's own executor emits (gateway.request → gateway.plan, gateway.execute →
 * gateway.fetch per subgraph call), kept under the same names so traces and dashboards read the same
 * with this engine. Nothing at all when no tracer provider is registered (the kit's withSpan).
 */
const tracer = trace.getTracer('@apollo/gateway');
const inSpan = <T>(name: string, attributes: Record<string, string>, fn: () => Promise<T>): Promise<T> => withSpan(name, { attributes }, fn, undefined, tracer);

export interface PlanEngine {
  /** What Apollo Server is given instead of the ApolloGateway itself. */
  gateway: GatewayInterface;
  stats: PlanExecutorStats;
}

/**
 * The engine in front of `gateway`: Apollo Server gets the returned GatewayInterface, whose executor
 * is the engine's. `clients` are the subgraph clients by name, as the gateway's `buildService` made them.
 */
export function withPlanExecutor(gateway: ApolloGateway, clients: ReadonlyMap<string, GraphQLDataSource>): PlanEngine {
  const stats: PlanExecutorStats = { engine: 0, apollo: 0, prepared: 0 };
  let prepared = new Map<string, Prepared>();
  let state: SupergraphState | undefined;
  let apolloExecutor: GatewayExecutor | null = null;
  gateway.onSchemaLoadOrUpdate(({ apiSchema, coreSupergraphSdl }) => {
    state = supergraphState(apiSchema, coreSupergraphSdl);
    prepared = new Map();
  });

  const run = async (rc: GatewayGraphQLRequestContext): Promise<GatewayExecutionResult> => {
    const { request, document, queryHash } = rc;
    const current = state;
    if (!current) throw new Error('the gateway has no supergraph yet');
    const key = request.operationName ? `${queryHash}\n${request.operationName}` : queryHash;
    let entry = prepared.get(key);
    if (!entry) {
      entry = { operationContext: buildOperationContext({ schema: current.schema, operationDocument: document, operationName: request.operationName }) };
      if (prepared.size >= MAX_PREPARED) prepared.delete(prepared.keys().next().value!);
      prepared.set(key, entry);
      stats.prepared += 1;
    }
    const validationErrors = validateVariables(rc, entry.operationContext);
    if (validationErrors.length > 0) return { errors: validationErrors };

    const cached = entry;
    const planned =
      cached.planned ??
      (await inSpan('gateway.plan', {}, async () => {
        const plan = current.planner.buildQueryPlan(operationFromDocument(current.apiSchema, document, { operationName: request.operationName }), {
          recursiveSelectionsLimitDisabled: false,
          nonLocalSelectionsLimitDisabled: false,
        });
        return (cached.planned = { plan, ...shapeFor(current.apiSchema, cached.operationContext) });
      }));
    if (planned.introspection) {
      stats.apollo += 1;
      return apolloExecutor!(rc);
    }
    stats.engine += 1;
    if (planned.operation instanceof GraphQLError) return { errors: [planned.operation] };
    const { plan, shape, operation } = planned;
    return inSpan('gateway.execute', {}, () =>
      execute(plan, shape!, { rc, operation, services: clients, supergraphSchema: current.supergraphSchema, errors: [], root: Object.create(null), pending: new Set() }),
    );
  };
  const executor: GatewayExecutor = (rc) => inSpan('gateway.request', rc.request.operationName ? { operationName: rc.request.operationName } : {}, () => run(rc));

  return {
    stats,
    gateway: {
      onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
      async load(options) {
        ({ executor: apolloExecutor } = await gateway.load(options));
        return { executor };
      },
      stop: () => gateway.stop(),
    },
  };
}

/** Variable values checked against the operation's definitions (coerced as GraphQL-JS does), as Apollo Gateway's executor does first. */
function validateVariables(rc: RequestContext, operationContext: OperationContext): readonly GraphQLError[] {
  const definitions = operationContext.operation.variableDefinitions;
  if (!definitions) return [];
  return getVariableValues(operationContext.schema, definitions, rc.request.variables ?? {}).errors ?? [];
}

function shapeFor(apiSchema: Schema, operationContext: OperationContext): Omit<NonNullable<Prepared['planned']>, 'plan'> {
  const introspection = usesSchemaIntrospection(operationContext);
  let operation: Operation;
  try {
    operation = operationFromDocument(
      apiSchema,
      { kind: Kind.DOCUMENT, definitions: [operationContext.operation, ...Object.values(operationContext.fragments)] },
      { validate: false },
    );
  } catch (err) {
    if (err instanceof GraphQLError) return { operation: err, introspection };
    throw err;
  }
  return { operation, shape: introspection ? undefined : compileShape(operation), introspection };
}

function usesSchemaIntrospection(operationContext: OperationContext): boolean {
  let found = false;
  const check = {
    Field: (node: { name: { value: string } }) => {
      if (node.name.value === '__schema' || node.name.value === '__type') found = true;
    },
  };
  visit(operationContext.operation, check);
  for (const fragment of Object.values(operationContext.fragments)) visit(fragment, check);
  return found;
}

async function execute(plan: QueryPlan, shape: ShapeProgram, x: Execution): Promise<GatewayExecutionResult> {
  const unfiltered = x.root;
  if (plan.node?.kind === 'Subscription') throw new Error('Execution of subscriptions not supported by gateway');
  if (plan.node) await executeNode(x, plan.node, { path: [], data: unfiltered, fullResult: unfiltered });
  const { errors } = x;
  let data: Record<string, unknown> | null | undefined;
  try {
    const shaped = shapeResponse(shape, x.rc.request.variables, unfiltered);
    data = shaped.data;
    if (errors.length === 0 && shaped.errors.length > 0) return { extensions: { valueCompletion: shaped.errors }, data };
  } catch (error) {
    if (error instanceof GraphQLError) return { errors: [error] };
    if (error instanceof Error) return { errors: [new GraphQLError(error.message, { originalError: error })] };
    return { errors: [new GraphQLError('Unexpected error during query plan execution')] };
  }
  return errors.length === 0 ? { data } : { errors, data };
}

async function executeNode(x: Execution, node: PlanNode, cursor: Cursor | undefined): Promise<void> {
  if (!cursor) return;
  switch (node.kind) {
    case 'Sequence':
      for (const child of node.nodes) await executeNode(x, child, cursor);
      return;
    case 'Parallel':
      await Promise.all(node.nodes.map((child) => executeNode(x, child, cursor)));
      return;
    case 'Flatten':
      return executeNode(x, node.node, moveIntoCursor(x, cursor, node.path));
    case 'Fetch':
      try {
        await executeFetch(x, node, cursor);
      } catch (error) {
        x.errors.push(error as GraphQLError);
      }
      return;
    case 'Condition': {
      const branch = evaluateCondition(node, x.operation.variableDefinitions, x.rc.request.variables) ? node.ifClause : node.elseClause;
      if (branch) await executeNode(x, branch, cursor);
      return;
    }
    case 'Defer':
      throw new Error('@defer support is not available in the gateway');
  }
}

async function executeFetch(x: Execution, fetch: FetchNode, cursor: Cursor): Promise<void> {
  const service = x.services.get(fetch.serviceName);
  if (!service) throw new Error(`Couldn't find service with name "${fetch.serviceName}"`);
  const entities = (Array.isArray(cursor.data) ? cursor.data.filter((e) => e !== null && e !== undefined) : [cursor.data]) as Record<string, unknown>[];
  if (entities.length < 1) return;
  x.pending.add(entities);
  try {
    await fetchInto(x, fetch, cursor, entities);
  } finally {
    x.pending.delete(entities);
  }
}

async function fetchInto(x: Execution, fetch: FetchNode, cursor: Cursor, entities: Record<string, unknown>[]): Promise<void> {
  const variables: Record<string, unknown> = Object.create(null);
  const provided = x.rc.request.variables;
  if (fetch.variableUsages && provided) {
    for (const name of fetch.variableUsages) {
      if (Object.prototype.hasOwnProperty.call(provided, name) && provided[name] !== undefined) variables[name] = provided[name];
    }
  }

  if (!fetch.requires) {
    const { data: received, shared } = await send(x, fetch, cursor, variables);
    if (received && !shared) applyRewrites(x.supergraphSchema, fetch.outputRewrites, received);
    for (const entity of entities) deepMerge(x.owned, entity, received);
    return;
  }

  const requires = representationProgram(fetch.requires);
  const representations: Record<string, unknown>[] = [];
  const representationToEntity: number[] = [];
  entities.forEach((entity, index) => {
    const representation = selectRepresentation(x.supergraphSchema, entity, requires);
    if (representation?.__typename) {
      applyRewrites(x.supergraphSchema, fetch.inputRewrites, representation);
      representations.push(representation);
      representationToEntity.push(index);
    }
  });
  if (representations.length < 1) return;
  if ('representations' in variables) throw new Error(`Variables cannot contain key "representations"`);
  const { data: received, shared } = await send(x, fetch, cursor, { ...variables, representations });
  if (!received) return;
  const receivedEntities = received._entities;
  if (!Array.isArray(receivedEntities)) throw new Error(`Expected "data._entities" in response to be an array`);
  if (receivedEntities.length !== representations.length) throw new Error(`Expected "data._entities" to contain ${representations.length} elements`);
  // Apollo iterates over `entities.length` here; indexes past the representations merge nothing.
  for (let i = 0; i < entities.length; i++) {
    const receivedEntity = receivedEntities[i] as Record<string, unknown> | null | undefined;
    const existing = entities[representationToEntity[i]!];
    if (!shared) {
      // (A shared answer comes only to fetches without output rewrites: then this __typename, which
      // only the rewrites read, would merge as the value `existing` already has.)
      if (receivedEntity && !receivedEntity.__typename) receivedEntity.__typename = existing?.__typename;
      applyRewrites(x.supergraphSchema, fetch.outputRewrites, receivedEntity!);
    }
    deepMerge(x.owned, existing!, receivedEntity);
  }
}

async function send(
  x: Execution,
  fetch: FetchNode,
  cursor: Cursor,
  variables: Record<string, unknown>,
): Promise<{ data: Record<string, unknown> | null | undefined; shared: boolean }> {
  const service = x.services.get(fetch.serviceName)!;
  const options = {
    kind: INCOMING_OPERATION,
    request: { query: fetch.operation, variables, operationName: fetch.operationName },
    incomingRequestContext: x.rc,
    context: x.rc.context,
    document: fetch.operationDocumentNode,
    pathInIncomingRequest: cursor.path as never,
  } as unknown as GraphQLDataSourceProcessOptions<GatewayContext>;
  // Output rewrites modify the answer: those fetches take a private copy.
  const readOnly = service instanceof SubgraphClient && !fetch.outputRewrites?.length;
  const { response, shared } = await inSpan('gateway.fetch', { service: fetch.serviceName }, async () =>
    readOnly ? service.processShared(options) : { response: await service.process(options), shared: false },
  );
  if (shared && !x.owned) {
    x.owned = new WeakSet([x.root]);
    for (const entities of x.pending) for (const entity of entities) x.owned.add(entity);
  }
  if (response.errors) {
    const pathOf = errorPathGenerator(fetch, cursor);
    for (const error of response.errors) x.errors.push(downstreamServiceError(error, fetch.serviceName, pathOf));
    if (!response.extensions?.ftv1) {
      const metrics = x.rc.metrics as { nonFtv1ErrorPaths?: { subgraph: string; path: unknown }[] };
      const paths = response.errors.map((error) => ({ subgraph: fetch.serviceName, path: error.path }));
      if (metrics.nonFtv1ErrorPaths) metrics.nonFtv1ErrorPaths.push(...paths);
      else metrics.nonFtv1ErrorPaths = paths;
    }
  }
  return { data: response.data as Record<string, unknown> | null | undefined, shared };
}

function errorPathGenerator(fetch: FetchNode, cursor: Cursor): (path: readonly (string | number)[] | undefined) => ResponsePath | undefined {
  let hydrated: ResponsePath[] | undefined;
  return (errorPath) => {
    if (fetch.requires && typeof errorPath?.[1] === 'number') {
      hydrated ??= hydratedPaths(cursor.path, cursor.fullResult);
      return [...(hydrated[errorPath[1]] ?? []), ...errorPath.slice(2)];
    }
    return errorPath ? [...cursor.path, ...errorPath] : undefined;
  };
}

function downstreamServiceError(
  original: { message?: string; path?: readonly (string | number)[]; extensions?: Record<string, unknown> },
  serviceName: string,
  pathOf: (path: readonly (string | number)[] | undefined) => ResponsePath | undefined,
): GraphQLError {
  const message = original.message || `Error while fetching subquery from service "${serviceName}"`;
  const options = { originalError: original as Error, path: pathOf(original.path), extensions: { ...original.extensions, serviceName } };
  const codeDef = errorCodeDef(original as GraphQLError);
  if (!codeDef && original.extensions?.code) return new GraphQLError(message, options);
  return (codeDef ?? ERRORS.DOWNSTREAM_SERVICE_ERROR).err(message, options);
}

/**
 * Apollo Gateway's deepMerge, same result (also for keys such as `constructor` that a plain object
 * inherits: they become own properties first), without its per-key helper calls.
 */
function deepMerge(owned: WeakSet<object> | undefined, target: Record<string, unknown>, source: Record<string, unknown> | null | undefined): void {
  if (source === undefined || source === null) return;
  for (const key of Object.keys(source)) {
    const value = source[key];
    if (value === undefined) continue;
    if (!hasOwn(target, key) && key in target) Object.defineProperty(target, key, { configurable: true, enumerable: true, value: undefined, writable: true });
    const existing = target[key];
    if (existing && isPlainObject(value)) {
      deepMerge(owned, ownedChild(owned, target, key) as Record<string, unknown>, value);
    } else if (Array.isArray(value) && Array.isArray(existing) && value.length === existing.length) {
      const list = ownedChild(owned, target, key) as unknown[];
      for (let i = 0; i < value.length; i++) {
        const from = value[i];
        if (isPlainObject(list[i]) && isPlainObject(from)) deepMerge(owned, ownedChild(owned, list, i) as Record<string, unknown>, from);
        else list[i] = from;
      }
    } else {
      target[key] = value;
    }
  }
}

/**
 * `container[key]`, made this operation's own first when copying on write (see Execution.owned):
 * a shallow copy (own properties in order, as JSON.parse made them) takes the original's place.
 */
function ownedChild(owned: WeakSet<object> | undefined, container: Record<string, unknown> | unknown[], key: string | number): unknown {
  const child = (container as Record<string | number, unknown>)[key];
  if (owned === undefined || child === null || typeof child !== 'object' || owned.has(child)) return child;
  const copy = Array.isArray(child) ? child.slice() : { ...(child as Record<string, unknown>) };
  owned.add(copy);
  (container as Record<string | number, unknown>)[key] = copy;
  return copy;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A fetch's `requires` selection compiled once per plan node: response names resolved, and whether an
 * inline fragment applies to a __typename memoised (Apollo re-walks the selection nodes per entity).
 */
type RepresentationStep =
  { field: true; name: string; sub: RepresentationStep[] | undefined } | { field: false; typeCondition: string; sub: RepresentationStep[]; applies: Map<string, boolean> };
const representationPrograms = new WeakMap<QueryPlanSelectionNode[], RepresentationStep[]>();

function representationProgram(selections: QueryPlanSelectionNode[]): RepresentationStep[] {
  let program = representationPrograms.get(selections);
  if (!program) {
    program = [];
    for (const selection of selections) {
      if (selection.kind === Kind.FIELD) {
        program.push({ field: true, name: getResponseName(selection), sub: selection.selections ? representationProgram(selection.selections) : undefined });
      } else if (selection.typeCondition) {
        // An inline fragment without a type condition selects nothing here (as in Apollo's executor).
        program.push({ field: false, typeCondition: selection.typeCondition, sub: representationProgram(selection.selections), applies: new Map() });
      }
    }
    representationPrograms.set(selections, program);
  }
  return program;
}

const hasOwn = (object: object, key: string) => Object.prototype.hasOwnProperty.call(object, key);

/**
 * The representation of an entity for a fetch's `requires` selection (null when a required field is missing).
 * A plain `{}` (fast properties: cheaper to build and to serialize into the request body than a
 * prototype-less dictionary, one per entity per fetch); every key is set as an own property, so
 * names such as `constructor` never read or reach the prototype.
 */
function selectRepresentation(schema: GraphQLSchema, source: unknown, program: RepresentationStep[]): Record<string, unknown> | null {
  if (source === null) return null;
  const from = source as Record<string, unknown>;
  const result: Record<string, unknown> = {};
  for (const step of program) {
    if (step.field) {
      const value = hasOwn(from, step.name) ? from[step.name] : undefined;
      if (value === undefined) return null;
      const sub = step.sub;
      setOwn(
        result,
        step.name,
        Array.isArray(value) ? (sub ? value.map((v) => selectRepresentation(schema, v, sub)) : value.slice()) : sub ? selectRepresentation(schema, value, sub) : value,
      );
    } else if (source) {
      const typename = from.__typename;
      let applies: boolean | undefined = typeof typename === 'string' ? step.applies.get(typename) : undefined;
      if (applies === undefined) {
        applies = isObjectOfType(schema, from, step.typeCondition);
        if (typeof typename === 'string') step.applies.set(typename, applies);
      }
      if (applies) deepMerge(undefined, result, selectRepresentation(schema, source, step.sub));
    }
  }
  return result;
}

function moveIntoCursor(x: Execution, cursor: Cursor, path: ResponsePath): Cursor | undefined {
  const data = flattenResultsAtPath(x.owned, cursor.data, path, 0);
  return data ? { path: cursor.path.concat(path), data, fullResult: cursor.fullResult } : undefined;
}

/** The values at `path` (lists flattened); when copying on write, every object on the way is made this operation's own. */
function flattenResultsAtPath(owned: WeakSet<object> | undefined, value: unknown, path: ResponsePath, from: number): unknown {
  if (from === path.length || value === undefined || value === null) return value;
  const current = path[from];
  if (current === '@') {
    const out: unknown[] = [];
    const list = value as unknown[];
    let i = 0;
    for (const element of list) {
      // (a list's elements are made this operation's own; anything else iterable is read as is)
      const inner = flattenResultsAtPath(owned, Array.isArray(list) ? ownedChild(owned, list, i) : element, path, from + 1);
      i += 1;
      if (Array.isArray(inner)) for (const item of inner) out.push(item);
      else out.push(inner);
    }
    return out;
  }
  if (typeof current !== 'string') throw new Error(`Unexpected ${typeof current} found in path`);
  if (Array.isArray(value)) throw new Error(`Unexpected array in result for path element ${current}`);
  const obj = value as Record<string, unknown>;
  return flattenResultsAtPath(owned, hasOwn(obj, current) ? ownedChild(owned, obj, current) : undefined, path, from + 1);
}
