/** The gateway on its own (containers, real services): serves SUPERGRAPH_PATH on PORT. */
import { readConfig } from '@crm/kit';
import { startGateway } from './server';

async function main() {
  const config = readConfig();
  const gateway = await startGateway({ config });
  const shutdown = () => void gateway.stop().then(() => process.exit(0));
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
