import { DateTimeResolver, JSONResolver } from 'graphql-scalars';

/** The contract's scalars, shared by every subgraph. */
export const scalarResolvers = { DateTime: DateTimeResolver, JSON: JSONResolver };
