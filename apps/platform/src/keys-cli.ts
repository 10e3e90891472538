/**
 * `npm run keys`: a new set of signing keys for a deployment, as KEY=value lines (an .env file for
 * docker compose, or `kubectl create secret generic crm-keys --from-env-file=…`): AUTH_SIGNING_KEY
 * and GATEWAY_SIGNING_KEY, one <NAME>_SERVICE_KEY per subgraph, and the public sets AUTH_PUBLIC_KEYS,
 * GATEWAY_PUBLIC_KEYS, SERVICE_PUBLIC_KEYS. Give each service only its own (docs/security.md).
 */
import { generateKeySet } from '@crm/runtime';
import { SUBGRAPHS } from './subgraphs';

const set = generateKeySet(SUBGRAPHS.map((s) => s.name));
for (const [name, value] of Object.entries(set)) process.stdout.write(`${name}=${value}\n`);
