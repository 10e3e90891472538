/**
 * The password mutations are limited like login (./login-protection.ts), with the same numbers
 * (LOGIN_FAILS_PER_ACCOUNT_IP in LOGIN_FAILS_WINDOW_SECONDS, LOGIN_FAILS_PER_IP_PER_DAY,
 * LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT, blocks of LOGIN_BLOCK_SECONDS) on counters of their own:
 * - requestPasswordReset: every request counts (it always answers true, and each one sends a mail):
 *   per email+IP, per IP a day, per email (any IP) a day. The limits do not depend on whether the
 *   email is known, so a refusal discloses nothing.
 * - resetPassword: a refused token (UNAUTHENTICATED) counts per IP (window and day).
 * - changePassword: a wrong current password counts per user+IP and per user; a success clears them.
 * Refused while a counter is blocked: RATE_LIMITED with Retry-After. One such field per operation.
 */
import { GraphQLError, Kind, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { createLimiter, RateLimiterRes } from '../limiter';
import { redisPrefix } from '../redis';
import { requestOf } from '../request-info';
import type { FeatureOptions, GatewayFeature } from './feature';
import { mutationCalls, type MutationCall } from './mutation-calls';

const GUARDED = ['requestPasswordReset', 'resetPassword', 'changePassword'] as const;
type Guarded = (typeof GUARDED)[number];

interface Call extends MutationCall {
  field: Guarded;
}

/** The guarded fields of a mutation with their coerced arguments (inline, variables, defaults alike). */
const guardedCalls = (...args: [GraphQLSchema, OperationDefinitionNode, Record<string, FragmentDefinitionNode>, Record<string, unknown>]): Call[] =>
  mutationCalls(...args, GUARDED) as Call[];

interface Limit {
  limiter: RateLimiterAbstract;
  blockSeconds: number;
  key: string;
}

export function usePasswordProtection({ config, redis }: FeatureOptions): GatewayFeature {
  const prefix = `${redisPrefix(config)}password`;
  const block = config.LOGIN_BLOCK_SECONDS;
  const limiter = (name: string, points: number, duration: number) => createLimiter(redis, { keyPrefix: `${prefix}:${name}`, points, duration });
  const perAccountIp = limiter('acct-ip', config.LOGIN_FAILS_PER_ACCOUNT_IP, config.LOGIN_FAILS_WINDOW_SECONDS);
  const perIpDay = limiter('ip', config.LOGIN_FAILS_PER_IP_PER_DAY, 86_400);
  const perAccount = limiter('acct', config.LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT, 86_400);

  /** The counters a call is held to (keys are namespaced by field: a reset request never blocks a login). */
  function limitsOf(call: Call, ip: string, userId: string | undefined): Limit[] | null {
    if (call.field === 'requestPasswordReset') {
      const email = typeof call.args.email === 'string' ? call.args.email.trim().toLowerCase() : undefined;
      if (!email) return null;
      return [
        { limiter: perAccountIp, blockSeconds: block, key: `reset-request|${email}|${ip}` },
        { limiter: perIpDay, blockSeconds: 86_400, key: `reset-request|${ip}` },
        { limiter: perAccount, blockSeconds: block, key: `reset-request|${email}` },
      ];
    }
    if (call.field === 'resetPassword') {
      return [
        { limiter: perAccountIp, blockSeconds: block, key: `reset|${ip}` },
        { limiter: perIpDay, blockSeconds: 86_400, key: `reset|${ip}` },
      ];
    }
    if (!userId) return []; // changePassword without a user: the subgraph refuses it (UNAUTHENTICATED)
    return [
      { limiter: perAccountIp, blockSeconds: block, key: `change|${userId}|${ip}` },
      { limiter: perAccount, blockSeconds: block, key: `change|${userId}` },
    ];
  }

  async function consume(limits: Limit[]): Promise<void> {
    await Promise.all(
      limits.map(async (l) => {
        try {
          const res = await l.limiter.consume(l.key, 1);
          if (res.consumedPoints >= l.limiter.points) await l.limiter.block(l.key, l.blockSeconds);
        } catch (err) {
          if (!(err instanceof RateLimiterRes)) throw err;
        }
      }),
    ).catch(() => undefined);
  }

  return {
    name: 'password-protection',
    apolloPlugins: [
      {
        async requestDidStart({ contextValue }) {
          const ip = requestOf(contextValue)?.ip ?? 'unknown';
          let pending: { call: Call; limits: Limit[] } | undefined;
          return {
            async didResolveOperation({ operation, document, request, schema }) {
              if (!operation) return;
              const fragments: Record<string, FragmentDefinitionNode> = {};
              for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
              const calls = guardedCalls(schema, operation, fragments, request.variables ?? {});
              if (calls.length === 0) return;
              if (calls.length > 1) {
                throw new GraphQLError('At most one password operation per request', { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
              }
              const call = calls[0]!;
              const limits = limitsOf(call, ip, contextValue.identity?.userId);
              if (limits === null) return; // no email: the subgraph answers BAD_USER_INPUT
              const states = await Promise.all(limits.map((l) => l.limiter.get(l.key).catch(() => null)));
              let retry = 0;
              states.forEach((s, i) => {
                if (s && s.consumedPoints >= limits[i]!.limiter.points) retry = Math.max(retry, s.msBeforeNext);
              });
              if (retry > 0) {
                const seconds = Math.max(1, Math.ceil(retry / 1000));
                throw new GraphQLError(`Too many password attempts; retry in ${seconds} s`, {
                  extensions: { code: 'RATE_LIMITED', retryAfter: seconds, http: { status: 429, headers: new Map([['retry-after', String(seconds)]]) } },
                });
              }
              // A reset request counts whatever its outcome (each is a mail sent); the others only when they fail.
              if (call.field === 'requestPasswordReset') await consume(limits);
              else pending = { call, limits };
            },
            async willSendResponse({ response }) {
              if (!pending || response.body.kind !== 'single') return;
              const { call, limits } = pending;
              const { data, errors } = response.body.singleResult;
              const mine = (errors ?? []).filter((e) => (e.path?.[0] ?? call.responseKey) === call.responseKey);
              const failed =
                call.field === 'resetPassword'
                  ? mine.some((e) => e.extensions?.code === 'UNAUTHENTICATED')
                  : mine.some((e) => e.extensions?.code === 'BAD_USER_INPUT' && e.extensions?.field === 'currentPassword');
              if (failed) await consume(limits);
              else if (data?.[call.responseKey] && call.field === 'changePassword') {
                await Promise.all(limits.map((l) => l.limiter.delete(l.key))).catch(() => undefined);
              }
            },
          };
        },
      },
    ],
  };
}
