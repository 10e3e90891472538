/** The subgraph runtime: HTTP, identity and keys, authorization, validation, the subgraph bootstrap, peers, cache. */
export * from './identity';
export * from './keys';
export * from './authz';
export * from './http';
export * from './scalars';
export * from './validate';
export * from './subgraph';
export * from './cache';
export * from './redis';
export * from './cluster';
export * from './peers';
export * from './supergraph-config';
export * from './launcher-link';
export * from './run-subgraph';
export * from './subgraph-call';
