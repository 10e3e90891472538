/**
 * Inbound deduplication (INBOUND_DEDUPE, off by default): identical queries in flight at the same
 * time share one execution. It is not a cache: nothing outlives the leading request.
 *
 * It runs as the last step before execution (Apollo's `responseForOperation`), so every request —
 * leader or follower — has been parsed and validated, passed the operation limits, the token
 * denylist (context) and paid its own rate-limit points first. The operation type comes from the
 * parsed document: only `query` operations share, never mutations or subscriptions, whatever the
 * raw text looks like. Requests share when all of these are equal: the caller (user, or client
 * address when anonymous), the document's hash, the variables, the operation name and the
 * request's Origin.
 */
import { HeaderMap, type GraphQLRequestContext, type GraphQLResponse } from '@apollo/server';
import type { GatewayContext } from '../datasource';
import { requestOf } from '../request-info';
import type { FeatureOptions, GatewayFeature } from './feature';

type Finished = (Pick<GraphQLResponse, 'http'> & { result: Record<string, unknown> }) | undefined;

export function inboundDedupeKey(ctx: GraphQLRequestContext<GatewayContext>): string | undefined {
  if (ctx.operation?.operation !== 'query' || !ctx.queryHash) return undefined;
  const info = requestOf(ctx.contextValue);
  const identity = ctx.contextValue.identity;
  const who = identity ? `u:${identity.userId}|${identity.role}|${identity.email}` : `ip:${info?.ip ?? 'unknown'}`;
  const origin = info?.req.headers.origin ?? '';
  return JSON.stringify([who, ctx.queryHash, ctx.request.operationName ?? null, ctx.request.variables ?? {}, origin]);
}

export function useInboundDedupe({ config }: FeatureOptions): GatewayFeature {
  if (!config.INBOUND_DEDUPE) return { name: 'inbound-dedupe' };
  const inFlight = new Map<string, Promise<Finished>>();
  return {
    name: 'inbound-dedupe',
    apolloPlugins: [
      {
        async requestDidStart() {
          let settle: ((f: Finished) => void) | undefined;
          let leaderKey: string | undefined;
          return {
            async responseForOperation(ctx) {
              const key = inboundDedupeKey(ctx);
              if (key === undefined) return null;
              const leader = inFlight.get(key);
              if (leader) {
                const finished = await leader;
                // The leader's answer could not be shared (streamed, or it failed before answering): run alone.
                if (!finished) return null;
                return { http: { status: finished.http.status, headers: new HeaderMap(finished.http.headers) }, body: { kind: 'single', singleResult: { ...finished.result } } };
              }
              leaderKey = key;
              inFlight.set(key, new Promise((resolve) => (settle = resolve)));
              return null;
            },
            async willSendResponse({ response }) {
              if (!settle || leaderKey === undefined) return;
              inFlight.delete(leaderKey);
              settle(response.body.kind === 'single' ? { http: response.http, result: response.body.singleResult as Record<string, unknown> } : undefined);
              settle = undefined;
            },
          };
        },
      },
    ],
  };
}
