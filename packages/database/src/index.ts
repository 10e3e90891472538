/** The database: connection and migrations, the embedded Postgres, lean reads, batching and pagination. */
export * from './db';
export * from './embedded-postgres';
export * from './kit-migration';
export * from './pagination';
export * from './batch';
export * from './lean';
