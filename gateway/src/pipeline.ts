/**
 * One pipeline for every client operation, HTTP or WebSocket, and a separate door for the
 * gateway's own operations.
 *
 * Client operations. The rules are Apollo Server's request pipeline as the features build it: the
 * parse limit (MAX_TOKENS), the validation rules (API schema, depth, aliases, directives) and every
 * feature's plugins (unresolvable operations and NUL, trusted documents and APQ, token state, cost
 * limit and rate limit, login and password protection, no suggestions in production), errors
 * formatted by the one `formatError`. An HTTP request runs it through Apollo's HTTP handler; a
 * WebSocket subscribe runs it through `checkOperation` below: the same pipeline, stopped where
 * execution would start (`checkOnlyPlugin` answers in place of the executor and hands back the
 * validated document). A rule is written once, as a plugin or a validation rule, and holds on both
 * transports with the same error codes; no feature knows which transport a request came by.
 *
 * The gateway's own operations (a live event's entity resolved for a subscriber, see
 * features/subscriptions/resolve.ts). `InternalExecutor` hands them to the executor Apollo Server
 * was given (the engine's, or Apollo Gateway's) directly. They never enter the client pipeline, so
 * no client rule (budget, cost, trusted documents, inbound dedupe, request metrics) sees them — by
 * construction, with no flag for a feature to check.
 */
import type { ApolloServer, ApolloServerPlugin, GraphQLRequest } from '@apollo/server';
import { HeaderMap } from '@apollo/server';
import type { GatewayExecutionResult, GatewayExecutor, GatewayGraphQLRequestContext, GatewayInterface } from '@apollo/server-gateway-interface';
import { getOperationAST, GraphQLError, type DocumentNode, type GraphQLFormattedError, type GraphQLSchema, type OperationDefinitionNode, type OperationTypeNode } from 'graphql';
import type { Logger } from '@crm/telemetry';
import type { GatewayContext } from './datasource';

/** A client operation that passed every rule, as the pipeline parsed and validated it. */
export interface Checked {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  /** The document's text (from the request, the trusted-documents manifest or APQ). */
  source: string;
  /** sha256 of `source`. */
  queryHash: string;
}

export interface CheckOptions {
  /** Refuse (BAD_USER_INPUT) an operation of any other type, before anything is charged for it. */
  only?: OperationTypeNode;
  /** The refusal's message when the operation is of another type. */
  refusal?: string;
}

interface CheckSlot extends CheckOptions {
  checked?: Checked;
}

// A symbol-keyed own property: Apollo Server shallow-copies the context (Object.assign keeps it).
const CHECK_ONLY = Symbol('crm.checkOnly');

const slotOf = (context: object): CheckSlot | undefined => (context as { [CHECK_ONLY]?: CheckSlot })[CHECK_ONLY];

/**
 * The pipeline's last step for `checkOperation`: instead of executing, hand the checked document
 * back. Must come first in Apollo Server's plugin list (server.ts): then no other plugin's
 * `responseForOperation` (inbound dedupe) sees a checked-only operation, and its type check (the
 * first `didResolveOperation`) answers before any other refusal.
 */
export const checkOnlyPlugin: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart({ contextValue }) {
    const slot = slotOf(contextValue);
    if (!slot) return;
    return {
      async didResolveOperation({ operation }) {
        if (slot.only && operation && operation.operation !== slot.only) {
          throw new GraphQLError(slot.refusal ?? `Only ${slot.only} operations are accepted here`, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
        }
      },
      async responseForOperation({ document, operation, source, queryHash }) {
        if (operation && queryHash) slot.checked = { document, operation, source, queryHash };
        return { http: { status: 200, headers: new HeaderMap() }, body: { kind: 'single', singleResult: {} } };
      },
    };
  },
};

/**
 * A client operation through every rule HTTP operations go through, without running it: the
 * checked document, or the errors a client gets (formatted as over HTTP: same codes and messages).
 */
export async function checkOperation(
  apollo: ApolloServer<GatewayContext>,
  request: Pick<GraphQLRequest, 'query' | 'operationName' | 'variables' | 'extensions'>,
  context: GatewayContext,
  options: CheckOptions = {},
): Promise<Checked | GraphQLError[]> {
  const slot: CheckSlot = { ...options };
  const contextValue = Object.defineProperty({ ...context }, CHECK_ONLY, { value: slot, enumerable: true });
  const response = await apollo.executeOperation(request, { contextValue });
  const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
  if (errors?.length) return errors.map(toGraphQLError);
  if (!slot.checked) return [new GraphQLError('The operation could not be checked', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
  return slot.checked;
}

/** A formatted error (what a client receives) as a GraphQLError with the same message, extensions and path. */
export function toGraphQLError(e: GraphQLFormattedError): GraphQLError {
  return new GraphQLError(e.message, { extensions: e.extensions ?? {}, ...(e.path ? { path: e.path } : {}) });
}

/** An operation the gateway builds itself (already valid against the API schema it was built from). */
export interface InternalOperation {
  document: DocumentNode;
  /** The printed document. */
  query: string;
  /** sha256 of `query` (the executor prepares a document once per hash). */
  queryHash: string;
  operationName?: string;
}

type FormatError = (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;

/**
 * The door for the gateway's own operations: the executor Apollo Server was given, called directly.
 * `wrap` goes around the GatewayInterface handed to Apollo Server, to learn that executor and the
 * current API schema.
 */
export class InternalExecutor {
  private executor: GatewayExecutor | null = null;
  private schema: GraphQLSchema | undefined;

  constructor(
    private readonly logger: Logger,
    /** Apollo Server's formatError: what a client may see of an error is the same on every path. */
    private readonly formatError: FormatError,
  ) {}

  wrap(gateway: GatewayInterface): GatewayInterface {
    gateway.onSchemaLoadOrUpdate(({ apiSchema }) => {
      this.schema = apiSchema;
    });
    return {
      onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
      load: async (options) => {
        const loaded = await gateway.load(options);
        this.executor = loaded.executor;
        return loaded;
      },
      stop: () => gateway.stop(),
    };
  }

  /** Runs `op` with `variables` for `context` (the identity every subgraph applies its access rules to). */
  async execute(
    op: InternalOperation,
    variables: Record<string, unknown>,
    context: GatewayContext,
  ): Promise<Omit<GatewayExecutionResult, 'errors'> & { errors?: GraphQLFormattedError[] }> {
    const { executor, schema } = this;
    if (!executor || !schema) return { errors: [{ message: 'The supergraph is not loaded yet', extensions: { code: 'SERVICE_UNAVAILABLE' } }] };
    const operation = getOperationAST(op.document, op.operationName);
    if (!operation) return { errors: [this.format(new GraphQLError('The internal operation has no operation to run'))] };
    const requestContext = {
      request: { query: op.query, variables, ...(op.operationName ? { operationName: op.operationName } : {}) },
      document: op.document,
      source: op.query,
      queryHash: op.queryHash,
      operationName: operation.name?.value ?? null,
      operation,
      schema,
      context,
      logger: this.logger,
      metrics: {},
    } as unknown as GatewayGraphQLRequestContext;
    try {
      const { errors, ...result } = await executor(requestContext);
      return { ...result, ...(errors ? { errors: errors.map((e) => this.format(e)) } : {}) };
    } catch (err) {
      return {
        errors: [
          this.format(err instanceof GraphQLError ? err : new GraphQLError(err instanceof Error ? err.message : String(err), { originalError: err instanceof Error ? err : null })),
        ],
      };
    }
  }

  private format(error: GraphQLError): GraphQLFormattedError {
    const formatted = error.toJSON();
    // The transport's own extension is not the client's (Apollo Server drops it too).
    if (formatted.extensions && 'http' in formatted.extensions) {
      const { http: _http, ...extensions } = formatted.extensions;
      return this.formatError({ ...formatted, extensions }, error);
    }
    return this.formatError(formatted, error);
  }
}
