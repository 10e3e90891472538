/**
 * The platform as `npm start` runs it on the embedded default, for stories that start it as a
 * child process: a DATA_DIR of the story's own, and the environment with free ports and none of
 * the real services' variables (CI sets them for the rest of the suite), so the platform starts
 * its own Postgres and event log there.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, removeEmbeddedPostgres } from '@crm/database';
import { testOverrides } from '@crm/platform';

/** A temporary DATA_DIR; as root the server's user must pass through (.data/postgres inside stays private). */
export function embeddedDataDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** Removes the DATA_DIR and the cluster in it (relocated or not); the server must have stopped. */
export function removeEmbeddedDataDir(dir: string): void {
  removeEmbeddedPostgres(join(dir, 'postgres'));
  rmSync(dir, { recursive: true, force: true });
}

/** The environment of an embedded platform on DATA_DIR `dir`: a process per service, one gateway worker, free ports. */
export async function embeddedPlatformEnv(id: string, dir: string): Promise<{ env: Record<string, string>; gatewayPort: number }> {
  const [gatewayPort, ...subgraphPorts] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const ports: Record<string, string> = { PORT: String(gatewayPort) };
  ['AUTH', 'CUSTOMER', 'OPPORTUNITY', 'SALES_ACTIVITY', 'ANALYTICS'].forEach((name, i) => (ports[`${name}_URL`] = `http://127.0.0.1:${subgraphPorts[i]}/graphql`));
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(POSTGRES_URL|KAFKA_BROKERS|REDIS_URL|.*_DATABASE_URL)$/.test(k)) base[k] = v;
  const env = {
    ...base,
    ...testOverrides(id, { DATA_DIR: dir, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', STACK_PROCESSES: 'multi', GATEWAY_WORKERS: '1', ...ports }),
  };
  return { env, gatewayPort: gatewayPort! };
}
