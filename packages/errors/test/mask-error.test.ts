/**
 * maskError (the subgraphs' and the gateway's formatError): a failure that passes by itself (the
 * database away or restarting: events' isTransient) reaches the client as SERVICE_UNAVAILABLE, so
 * it knows to try again; in production with a generic message, never the driver's text or a host.
 */
import { GraphQLError } from 'graphql';
import { maskError } from '@crm/errors';
import { isTransient } from '@crm/events';

const resolverError = (original: Error) => new GraphQLError(original.message, { originalError: original });
const formatted = (err: GraphQLError) => ({ message: err.message, path: ['customers'], extensions: { code: 'INTERNAL_SERVER_ERROR' } });
const pgError = (message: string, code: string) => Object.assign(new Error(message), { code });

test('the database away or restarting: SERVICE_UNAVAILABLE, in production without the driver text', () => {
  for (const original of [
    pgError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
    pgError('the database system is starting up', '57P03'),
    pgError('terminating connection due to administrator command', '57P01'),
  ]) {
    const err = resolverError(original);
    expect(maskError(true, isTransient)(formatted(err), err)).toEqual({
      message: 'A service this request needs is unavailable for a moment; try again',
      path: ['customers'],
      extensions: { code: 'SERVICE_UNAVAILABLE' },
    });
    const dev = maskError(false, isTransient)(formatted(err), err);
    expect(dev.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    expect(dev.message).toContain(original.message); // development keeps the cause
  }
});

test('anything else stays an internal error (masked in production); public codes pass unchanged', () => {
  const bug = resolverError(new TypeError("Cannot read properties of undefined (reading 'id')"));
  expect(maskError(true, isTransient)(formatted(bug), bug)).toEqual({ message: 'Internal server error', path: ['customers'], extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  const syntax = resolverError(pgError('syntax error at or near "SELEC"', '42601'));
  expect(maskError(true, isTransient)(formatted(syntax), syntax).extensions?.code).toBe('INTERNAL_SERVER_ERROR');
  const input = new GraphQLError('Invalid email', { extensions: { code: 'BAD_USER_INPUT' } });
  expect(maskError(true, isTransient)({ message: input.message, extensions: { code: 'BAD_USER_INPUT' } }, input)).toEqual({
    message: 'Invalid email',
    extensions: { code: 'BAD_USER_INPUT' },
  });
  // without a classifier (the gateway's own formatError): as before
  const away = resolverError(pgError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'));
  expect(maskError(true)(formatted(away), away).extensions?.code).toBe('INTERNAL_SERVER_ERROR');
});
