export * from './server';
export * from './compose';
export * from './auth';
export * from './datasource';
