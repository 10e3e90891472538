// Load generator process: autocannon against URL, prints its result as JSON on
// stdout. Spawned by run.mjs (pinned to the load-generator CPU when taskset
// exists).  node lib/load.mjs URL SECONDS CONNECTIONS
import autocannon from 'autocannon';
import { REQUEST_BODY } from './query.mjs';

const [url, seconds, connections] = process.argv.slice(2);
const result = await autocannon({
  url,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: REQUEST_BODY,
  connections: Number(connections),
  duration: Number(seconds),
  pipelining: 1,
  // k6 (used by the public benchmark) times requests out after 60 s.
  timeout: 60,
});
process.stdout.write(JSON.stringify(result));
