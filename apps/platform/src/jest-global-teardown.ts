/** After every suite (jest globalTeardown): stops and removes the embedded Postgres globalSetup started, if it did. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { removeEmbeddedPostgres, type EmbeddedPostgres } from '@crm/database';

const EMBEDDED = Symbol.for('crm.test.embeddedPostgres');

export default async function globalTeardown(): Promise<void> {
  const holder = globalThis as { [EMBEDDED]?: { server: EmbeddedPostgres; dir: string } };
  const embedded = holder[EMBEDDED];
  if (!embedded) return;
  delete holder[EMBEDDED];
  await embedded.server.stop();
  removeEmbeddedPostgres(join(embedded.dir, 'postgres'));
  rmSync(embedded.dir, { recursive: true, force: true });
  if (process.env.POSTGRES_URL === embedded.server.url) delete process.env.POSTGRES_URL;
}
