/** After every suite (jest globalTeardown): stops and removes the embedded Postgres globalSetup started, if it did. */
import { removeEmbeddedPostgres, type EmbeddedPostgres } from '@crm/kit';

const EMBEDDED = Symbol.for('crm.test.embeddedPostgres');

export default async function globalTeardown(): Promise<void> {
  const holder = globalThis as { [EMBEDDED]?: { server: EmbeddedPostgres; dir: string } };
  const embedded = holder[EMBEDDED];
  if (!embedded) return;
  delete holder[EMBEDDED];
  await embedded.server.stop();
  removeEmbeddedPostgres(embedded.dir);
  if (process.env.POSTGRES_URL === embedded.server.url) delete process.env.POSTGRES_URL;
}
