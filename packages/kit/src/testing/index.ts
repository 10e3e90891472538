export * from './eventually';
export * from './subgraph';
