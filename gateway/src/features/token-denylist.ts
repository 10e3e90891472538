/**
 * Revoked access tokens stop working within TOKEN_STATE_CACHE_MS of the revoking mutation's answer,
 * on every replica, with or without Kafka (docs/revocation.md). Every request with a token is
 * checked against auth's current token state (../revocations.ts: a signed internal call, cached
 * < 1 s): a revoked token gets UNAUTHENTICATED (401). When auth cannot confirm the state, reads go
 * on with the last state learnt and a mutation is refused (SERVICE_UNAVAILABLE: fail closed).
 * A mutation served by auth (role change, deletion, logout, …) makes this replica forget its cache
 * at once, so the next request of the same client already sees the change.
 *
 * No event consumer: nothing is learnt from user.events, so there is no consumer group to orphan
 * and nothing to rebuild after a restart.
 */
import { GraphQLError, parse } from 'graphql';
import { unauthenticated } from '../auth';
import type { FeatureOptions, GatewayFeature } from './feature';

/** Set on a request context whose token state auth could not confirm (Apollo clones the context: a property, not a WeakSet). */
interface Unconfirmed {
  tokenStateUnconfirmed?: boolean;
}

/** Auth mutations that never revoke a token: no reason to forget the cache after them. */
const NOT_REVOKING = new Set(['login', 'register']);

export function useTokenDenylist({ logger, revocations, supergraphSdl }: FeatureOptions): GatewayFeature {
  let authMutations = { sdl: '', fields: new Set<string>() };
  const authMutationFields = (): Set<string> => {
    const sdl = supergraphSdl?.() ?? '';
    if (sdl !== authMutations.sdl) authMutations = { sdl, fields: new Set([...mutationFieldsOf(sdl, 'AUTH')].filter((f) => !NOT_REVOKING.has(f))) };
    return authMutations.fields;
  };

  return {
    name: 'token-denylist',
    async extendContext(_req, _res, context) {
      if (!context.identity) return;
      const { reason, confirmed } = await revocations.check(context.identity.userId, context.tokenVersion ?? 0);
      if (reason) throw unauthenticated(reason);
      if (!confirmed) (context as Unconfirmed).tokenStateUnconfirmed = true;
    },
    apolloPlugins: [
      {
        async requestDidStart({ contextValue }) {
          return {
            async didResolveOperation({ operation }) {
              if (operation?.operation === 'mutation' && (contextValue as Unconfirmed).tokenStateUnconfirmed) {
                logger.warn({ userId: contextValue.identity?.userId }, 'revocations: mutation refused, token state unconfirmed');
                throw new GraphQLError('Cannot confirm that this access token is still valid (the auth service does not answer); try again shortly', {
                  extensions: { code: 'SERVICE_UNAVAILABLE', http: { status: 503 } },
                });
              }
            },
            async willSendResponse({ operation }) {
              if (operation?.operation !== 'mutation') return;
              const fields = authMutationFields();
              const touchesAuth = operation.selectionSet.selections.some((s) => s.kind !== 'Field' || fields.has(s.name.value) || fields.size === 0);
              if (touchesAuth) revocations.forget();
            },
          };
        },
      },
    ],
    async stop() {
      revocations.stop();
    },
  };
}

/** The root Mutation fields a subgraph (its join__Graph enum value, e.g. AUTH) resolves, from a supergraph SDL. */
export function mutationFieldsOf(sdl: string, graph: string): Set<string> {
  const fields = new Set<string>();
  if (!sdl) return fields;
  try {
    for (const def of parse(sdl).definitions) {
      if ((def.kind !== 'ObjectTypeDefinition' && def.kind !== 'ObjectTypeExtension') || def.name.value !== 'Mutation') continue;
      for (const field of def.fields ?? []) {
        const joined = field.directives?.some(
          (d) => d.name.value === 'join__field' && d.arguments?.some((a) => a.name.value === 'graph' && a.value.kind === 'EnumValue' && a.value.value === graph),
        );
        if (joined) fields.add(field.name.value);
      }
    }
  } catch {
    return fields;
  }
  return fields;
}
