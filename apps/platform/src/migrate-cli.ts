/**
 * `npm run migrate [-- <subgraph> …]`: applies pending migrations to each subgraph's own database
 * (Postgres with POSTGRES_URL / <NAME>_DATABASE_URL, else the embedded Postgres under DATA_DIR) and
 * exits. Services also migrate on start; this is for deployments that migrate as a separate step.
 */
import { createLogger } from '@crm/telemetry';
import { openSubgraphDatabase } from '@crm/runtime';
import { readConfig } from '@crm/config';
import { startEmbeddedDatabase } from './embedded-database';
import { SUBGRAPHS, subgraphByName } from './subgraphs';

async function main() {
  const database = await startEmbeddedDatabase(readConfig().DATA_DIR, createLogger('migrate', readConfig().LOG_LEVEL));
  try {
    await migrate();
  } finally {
    await database.stop();
  }
}

async function migrate() {
  const config = readConfig();
  const names = process.argv.slice(2);
  const defs = names.length > 0 ? names.map(subgraphByName) : SUBGRAPHS;
  for (const def of defs) {
    const logger = createLogger(`migrate:${def.name}`, config.LOG_LEVEL);
    const db = await openSubgraphDatabase(def, config, logger);
    await db.close();
    console.log(`${def.name}: up to date`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
