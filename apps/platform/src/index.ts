export * from './start-stack';
export * from './subgraphs';
export * from './testing';
export * from './processes';
export * from './kafka-dlq';
export * from './test-broker';
