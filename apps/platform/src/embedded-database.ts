/**
 * The embedded default's database for `npm start`, `npm run migrate` and the benchmarks: without
 * POSTGRES_URL, one Postgres server (kit embedded-postgres.ts) under DATA_DIR/postgres — a
 * throwaway one in a temporary directory when DATA_DIR=memory — whose URL is put in
 * process.env.POSTGRES_URL, so every service (in this process or forked) takes the ordinary
 * Postgres path: a database per subgraph, the driver's pool, the same migrations.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeEmbeddedPostgres, startEmbeddedPostgres, type EmbeddedPostgres } from '@crm/database';
import { type Logger } from '@crm/telemetry';

export interface EmbeddedDatabase {
  /** The server, or undefined when POSTGRES_URL names one of yours. */
  server: EmbeddedPostgres | undefined;
  /** Stops the server (last, after the services); removes a DATA_DIR=memory cluster. */
  stop(): Promise<void>;
}

export async function startEmbeddedDatabase(dataDir: string, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<EmbeddedDatabase> {
  if (env.POSTGRES_URL) return { server: undefined, stop: async () => undefined };
  const scratch = dataDir === 'memory' ? mkdtempSync(join(tmpdir(), 'crm-pg-')) : undefined;
  // as root, the server's user must pass through (the cluster inside stays private)
  if (scratch) chmodSync(scratch, 0o755);
  const dir = scratch ? join(scratch, 'postgres') : join(dataDir, 'postgres');
  const remove = () => {
    if (!scratch) return;
    removeEmbeddedPostgres(dir);
    rmSync(scratch, { recursive: true, force: true });
  };
  let server: EmbeddedPostgres;
  try {
    server = await startEmbeddedPostgres({ dir, logger });
  } catch (err) {
    remove();
    throw err;
  }
  env.POSTGRES_URL = server.url;
  return {
    server,
    async stop() {
      await server.stop();
      if (env.POSTGRES_URL === server.url) delete env.POSTGRES_URL;
      remove();
    },
  };
}
