/**
 * Domain errors are GraphQLErrors with the contract's codes, thrown from the domain and
 * passed to clients unchanged; anything else is masked as INTERNAL_SERVER_ERROR in production.
 */
import { GraphQLError } from 'graphql';

export type ErrorCode =
  'UNAUTHENTICATED' | 'FORBIDDEN' | 'BAD_USER_INPUT' | 'NOT_FOUND' | 'CONFLICT' | 'RATE_LIMITED' | 'PENDING_APPROVAL' | 'SERVICE_UNAVAILABLE' | 'INTERNAL_SERVER_ERROR';

export const PUBLIC_CODES: ReadonlySet<string> = new Set([
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'PENDING_APPROVAL',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'COST_LIMIT_EXCEEDED',
  'PAYLOAD_TOO_LARGE',
  'SERVICE_UNAVAILABLE',
]);

function error(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extra } });
}

export const unauthenticated = (message = 'Authentication required') => error('UNAUTHENTICATED', message);
export const forbidden = (message = 'Not allowed') => error('FORBIDDEN', message);
export const notFound = (what: string, id?: string) => error('NOT_FOUND', `${what} not found`, id ? { id } : {});
export const conflict = (message: string) => error('CONFLICT', message);
/** A registration received under REGISTRATION_POLICY=approval: the account waits for an ADMIN. */
export const pendingApproval = (message: string) => error('PENDING_APPROVAL', message);
export const badInput = (message: string, field?: string) => error('BAD_USER_INPUT', message, field ? { field } : {});
export const unavailable = (message: string) => error('SERVICE_UNAVAILABLE', message);
export const rateLimited = (message: string, retryAfterSeconds: number) => error('RATE_LIMITED', message, { retryAfter: retryAfterSeconds });

/**
 * formatError for Apollo Server: known codes pass; in production everything else becomes a
 * generic INTERNAL_SERVER_ERROR with no message detail, stack, SQL or host names.
 * `passing` (a subgraph's: the database unreachable, restarting, a deadlock victim — events'
 * isTransient) marks the failures that go away by themselves: SERVICE_UNAVAILABLE instead, so a
 * client knows to try again (in production with a generic message too).
 */
export function maskError(production: boolean, passing?: (err: unknown) => boolean) {
  return (
    formatted: {
      message: string;
      extensions?: Record<string, unknown> | undefined;
      path?: readonly (string | number)[] | undefined;
      locations?: readonly unknown[] | undefined;
    },
    error?: unknown,
  ) => {
    const code = String(formatted.extensions?.code ?? 'INTERNAL_SERVER_ERROR');
    if (!PUBLIC_CODES.has(code) && passing && error !== undefined && passing((error as { originalError?: unknown }).originalError ?? error)) {
      const message = 'A service this request needs is unavailable for a moment; try again';
      if (!production) return { ...formatted, message: `${message} (${formatted.message})`, extensions: { ...formatted.extensions, code: 'SERVICE_UNAVAILABLE' } };
      return { message, path: formatted.path, extensions: { code: 'SERVICE_UNAVAILABLE' } };
    }
    if (PUBLIC_CODES.has(code)) {
      if (!production) return formatted;
      const { stacktrace: _s, exception: _e, ...ext } = formatted.extensions ?? {};
      return { ...formatted, extensions: ext };
    }
    if (!production) return { ...formatted, extensions: { ...formatted.extensions, code } };
    return { message: 'Internal server error', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}
