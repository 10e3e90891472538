export * from './eventually';
export * from './subgraph';
export * from './http';
export * from './tokens';
