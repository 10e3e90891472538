export * from './eventually';
export * from './subgraph';
export * from './http';
