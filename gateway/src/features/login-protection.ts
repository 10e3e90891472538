/**
 * Login brute-force protection at the gateway (rate-limiter-flexible's "login endpoint
 * protection" recipe). The login resolver lives in the auth subgraph, so the gateway finds the
 * `login` field in the operation and its email (the coerced argument: inline, variable or a
 * variable's default; a login whose email cannot be determined is refused), refuses it while one of
 * these is blocked, and learns the outcome from the response:
 * - per account+IP: LOGIN_FAILS_PER_ACCOUNT_IP failures in LOGIN_FAILS_WINDOW_SECONDS;
 * - per IP: LOGIN_FAILS_PER_IP_PER_DAY failures a day (any accounts), blocked for a day;
 * - per account (any IP): LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT consecutive failures, reset by a
 *   success, blocked for LOGIN_BLOCK_SECONDS.
 * Every attempt reserves a point of each before it is evaluated (consume first: concurrent attempts
 * cannot all pass the check); a failure (login answered UNAUTHENTICATED) keeps it, an attempt that
 * was not evaluated gets it back. Going over a limit blocks that key for a bounded time (the block
 * expires: nobody can lock a victim out for good, at worst for LOGIN_BLOCK_SECONDS at a time). A
 * success clears the account+IP and the account counters. One login per operation (aliases would
 * multiply guesses per request).
 */
import { GraphQLError, Kind, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { createLimiter, RateLimiterRes } from '../limiter';
import { redisPrefix } from '../redis';
import { requestOf } from '../request-info';
import type { FeatureOptions, GatewayFeature } from './feature';
import { mutationCalls } from './mutation-calls';

interface LoginCall {
  responseKey: string;
  email: string | undefined;
}

/** The login fields of a mutation with their email as the resolver will see it (mutation-calls.ts). */
function loginCalls(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  fragments: Record<string, FragmentDefinitionNode>,
  rawVariables: Record<string, unknown>,
): LoginCall[] {
  return mutationCalls(schema, operation, fragments, rawVariables, ['login']).map(({ responseKey, args }) => ({
    responseKey,
    email: typeof args.email === 'string' ? args.email.trim().toLowerCase() : undefined,
  }));
}

export function useLoginProtection({ config, logger, redis }: FeatureOptions): GatewayFeature {
  let proxyWarned = false;
  const prefix = `${redisPrefix(config)}login`;
  const block = config.LOGIN_BLOCK_SECONDS;
  const byAccountIp = createLimiter(redis, { keyPrefix: `${prefix}:acct-ip`, points: config.LOGIN_FAILS_PER_ACCOUNT_IP, duration: config.LOGIN_FAILS_WINDOW_SECONDS });
  const byIp = createLimiter(redis, { keyPrefix: `${prefix}:ip`, points: config.LOGIN_FAILS_PER_IP_PER_DAY, duration: 86_400 });
  const byAccount = createLimiter(redis, { keyPrefix: `${prefix}:acct`, points: config.LOGIN_CONSECUTIVE_FAILS_PER_ACCOUNT, duration: 86_400 });
  const limits = [
    { limiter: byAccountIp, blockSeconds: block, key: (email: string, ip: string) => `${email}|${ip}` },
    { limiter: byIp, blockSeconds: 86_400, key: (_email: string, ip: string) => ip },
    { limiter: byAccount, blockSeconds: block, key: (email: string) => email },
  ];

  return {
    name: 'login-protection',
    apolloPlugins: [
      {
        async requestDidStart({ contextValue }) {
          const info = requestOf(contextValue);
          const ip = info?.ip ?? 'unknown';
          if (!proxyWarned && config.TRUST_PROXY_HOPS === 0 && info?.req.headers['x-forwarded-for']) {
            proxyWarned = true;
            logger.warn(
              'requests carry X-Forwarded-For but TRUST_PROXY_HOPS=0: behind a proxy every client shares one IP bucket (one day of per-IP login blocks for all); set TRUST_PROXY_HOPS',
            );
          }
          let call: LoginCall | undefined;
          return {
            async didResolveOperation({ operation, document, request, schema }) {
              if (!operation) return;
              const fragments: Record<string, FragmentDefinitionNode> = {};
              for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
              const calls = loginCalls(schema, operation, fragments, request.variables ?? {});
              if (calls.length === 0) return;
              if (calls.length > 1) {
                throw new GraphQLError('At most one login per request', { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
              }
              call = calls[0];
              if (!call?.email) {
                call = undefined;
                throw new GraphQLError('The login email could not be determined', { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
              }
              const email = call.email;
              // Reserve first: every attempt consumes a point of each limit before it is evaluated
              // (atomic in Redis or in memory), so concurrent attempts cannot all pass a check made
              // before any of them failed. A success gives its points back and resets the account.
              const results = await Promise.all(
                limits.map(async (l) => {
                  const key = l.key(email, ip);
                  try {
                    await l.limiter.consume(key, 1);
                    return 0;
                  } catch (err) {
                    if (!(err instanceof RateLimiterRes)) return 0; // a store failure: the insurance limiter answered or nothing can be said
                    // Over the limit: blocked for blockSeconds from the first refusal (never extended by more attempts).
                    if (err.msBeforeNext > l.blockSeconds * 1000) await l.limiter.block(key, l.blockSeconds).catch(() => undefined);
                    return Math.min(err.msBeforeNext, l.blockSeconds * 1000);
                  }
                }),
              );
              const retry = Math.max(...results);
              if (retry > 0) {
                const seconds = Math.max(1, Math.ceil(retry / 1000));
                call = undefined; // refused: not an attempt
                throw new GraphQLError(`Too many failed login attempts; retry in ${seconds} s`, {
                  extensions: { code: 'RATE_LIMITED', retryAfter: seconds, http: { status: 429, headers: new Map([['retry-after', String(seconds)]]) } },
                });
              }
            },
            async willSendResponse({ response }) {
              const email = call?.email;
              if (!call || !email || response.body.kind !== 'single') return;
              const { data, errors } = response.body.singleResult;
              const failed = errors?.some((e) => e.extensions?.code === 'UNAUTHENTICATED' && (e.path?.[0] ?? call!.responseKey) === call!.responseKey);
              if (data?.[call.responseKey]) {
                // A success resets the account's counters and gives back its per-IP point.
                await Promise.all([byAccountIp.delete(`${email}|${ip}`), byAccount.delete(email), byIp.reward(ip, 1)]).catch(() => undefined);
              } else if (!failed) {
                // Not evaluated (auth away, bad input): not an attempt, every point back.
                await Promise.all(limits.map((l) => l.limiter.reward(l.key(email, ip), 1))).catch(() => undefined);
              }
              // A failure keeps the points it reserved.
            },
          };
        },
      },
    ],
  };
}
