// Composes the supergraph of the four benchmark subgraphs with
// @apollo/composition and writes it to a file the gateways read.
//
//   node supergraph/compose.mjs [--out FILE] [--from-subgraphs]
//
// Default: composes from the subgraph SDL in subgraphs/schemas.mjs.
// --from-subgraphs: fetches `_service { sdl }` from the running subgraphs
// (127.0.0.1, SUBGRAPH_BASE_PORT+1..+4) instead.
// Routing URLs are http://127.0.0.1:<port>/graphql (SUBGRAPH_BASE_PORT, default 4590).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { composeServices } from '@apollo/composition';
import { typeDefs, subgraphUrls, SUBGRAPH_NAMES } from '../subgraphs/schemas.mjs';

export const DEFAULT_SUPERGRAPH_FILE = fileURLToPath(new URL('./supergraph.graphql', import.meta.url));

async function fetchSdl(url) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ _service { sdl } }' }),
  });
  const json = await res.json();
  if (!json?.data?._service?.sdl) throw new Error(`no _service.sdl from ${url}: ${JSON.stringify(json).slice(0, 300)}`);
  return json.data._service.sdl;
}

export async function composeSupergraph({ fromSubgraphs = false, basePort } = {}) {
  const urls = subgraphUrls(basePort);
  const services = [];
  for (const name of SUBGRAPH_NAMES) {
    const sdl = fromSubgraphs ? await fetchSdl(urls[name]) : typeDefs[name];
    services.push({ name, url: urls[name], typeDefs: parse(sdl) });
  }
  const result = composeServices(services);
  if (result.errors?.length) {
    throw new Error('composition failed:\n' + result.errors.map((e) => e.message).join('\n'));
  }
  return result.supergraphSdl;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const outIdx = args.indexOf('--out');
  const out = outIdx >= 0 ? args[outIdx + 1] : DEFAULT_SUPERGRAPH_FILE;
  const sdl = await composeSupergraph({ fromSubgraphs: args.includes('--from-subgraphs') });
  writeFileSync(out, sdl);
  console.log(`supergraph written to ${out} (${sdl.length} bytes)`);
}
