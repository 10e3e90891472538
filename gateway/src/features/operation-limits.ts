/**
 * Operation limits on every request: depth, aliases and directives (GraphQL Armor validation
 * rules), tokens (graphql-js's own parser limit, so an oversized document is never fully parsed),
 * no batched HTTP requests, and no field suggestions in production. The cost limit (MAX_COST) is
 * checked with the rate limit, in ./rate-limit.ts, because it needs the variables.
 */
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { ApolloServerPluginDisableSuggestions } from '@apollo/server/plugin/disableSuggestions';
import { GraphQLError, visit, type DocumentNode, type ValidationContext } from 'graphql';
import type { ApolloServerPlugin } from '@apollo/server';
import type { GatewayContext } from '../datasource';
import type { FeatureOptions, GatewayFeature } from './feature';

/** Armor reports "Syntax Error: Query depth limit of 12 exceeded, found 50."; we name the variable too. */
const report = (limit: string) => (ctx: ValidationContext | null, error: GraphQLError) => {
  ctx?.reportError(new GraphQLError(`${error.message.replace(/^Syntax Error: /, '')} (${limit})`, { extensions: { code: 'BAD_USER_INPUT', limit } }));
};

/** True when a string anywhere in `value` (deeply) holds U+0000. */
function hasNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([k, v]) => k.includes('\u0000') || hasNul(v, depth + 1));
}

// Apollo Server hands the same DocumentNode for the same document hash (its document store): look once.
const nulInDocument = new WeakMap<DocumentNode, boolean>();

function documentHasNul(document: DocumentNode): boolean {
  let found = nulInDocument.get(document);
  if (found === undefined) {
    found = false;
    visit(document, {
      StringValue: (node) => {
        if (node.value.includes('\u0000')) found = true;
      },
    });
    nulInDocument.set(document, found);
  }
  return found;
}

/**
 * An operation that cannot be resolved (unknown operationName, several operations and no name)
 * is a 400 OPERATION_RESOLUTION_FAILURE. NUL characters are refused at the door: no store here can hold U+0000 in text (Postgres
 * refuses it), so letting one through would only turn into an internal error deeper down.
 */
const refuseBadOperations: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ document, request, operation }) {
        // Apollo Gateway would answer a missing operation with a 500 (INVALID_GRAPHQL).
        if (!operation) {
          const message = request.operationName ? `Unknown operation named "${request.operationName}".` : 'Must provide operation name if query contains multiple operations.';
          throw new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE', http: { status: 400 } } });
        }
        if (hasNul(request.variables) || documentHasNul(document)) {
          throw new GraphQLError('NUL characters (U+0000) are not accepted in strings', { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
        }
      },
    };
  },
};

export function useOperationLimits({ config }: FeatureOptions): GatewayFeature {
  const armor = new ApolloArmor({
    maxDepth: { n: config.MAX_DEPTH, ignoreIntrospection: true, propagateOnRejection: false, onReject: [report('MAX_DEPTH')] },
    maxAliases: { n: config.MAX_ALIASES, propagateOnRejection: false, onReject: [report('MAX_ALIASES')] },
    maxDirectives: { n: config.MAX_DIRECTIVES, propagateOnRejection: false, onReject: [report('MAX_DIRECTIVES')] },
    // Tokens: parseOptions.maxTokens below (Armor's plugin would throw from a hook → 500).
    maxTokens: { enabled: false },
    // Cost: our own estimate (list sizes from `first`), see ../cost.ts.
    costLimit: { enabled: false },
    // Suggestions: Apollo Server's own plugin below, in production only.
    blockFieldSuggestion: { enabled: false },
  });
  const { validationRules } = armor.protect();
  return {
    name: 'operation-limits',
    validationRules,
    apolloOptions: { parseOptions: { maxTokens: config.MAX_TOKENS }, allowBatchedHttpRequests: false },
    apolloPlugins: [refuseBadOperations, ...(config.production ? [ApolloServerPluginDisableSuggestions()] : [])],
  };
}
