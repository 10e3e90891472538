/** Configuration: the only reader of process.env. */
export * from './config';
