/** Failures: the GraphQL error codes a client sees, and the one retry helper. */
export * from './errors';
export * from './retry';
