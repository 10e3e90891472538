import { GraphQLError, GraphQLScalarType, type ValueNode } from 'graphql';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';

/** The first instant Postgres stores as we write it: RFC 3339 allows the year 0000, Postgres has no year 0. */
const EARLIEST = Date.parse('0001-01-01T00:00:00.000Z');

function storable(value: Date): Date {
  if (value.getTime() < EARLIEST) {
    throw new GraphQLError('DateTime must be at or after 0001-01-01T00:00:00Z', { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value;
}

/**
 * graphql-scalars' DateTime (RFC 3339, years 0000-9999), refusing instants before the year 1 (the
 * year 0, written or reached through an offset), which every statement would fail on.
 */
const DateTime = new GraphQLScalarType({
  ...DateTimeResolver.toConfig(),
  parseValue: (value: unknown) => storable(DateTimeResolver.parseValue(value)),
  parseLiteral: (ast: ValueNode, variables?: Record<string, unknown> | null) => storable(DateTimeResolver.parseLiteral(ast, variables)),
});

/** The contract's scalars, shared by every subgraph. */
export const scalarResolvers = { DateTime, JSON: JSONResolver };
