/** `npm run compose [-- supergraph.yaml [out.graphql]]`: writes the supergraph the gateway serves. */
import { writeFileSync, renameSync } from 'node:fs';
import { composeSupergraph, readSupergraphConfig } from './compose';

const [configPath = 'supergraph.yaml', outPath = 'supergraph.graphql'] = process.argv.slice(2);
try {
  const sdl = composeSupergraph(readSupergraphConfig(configPath));
  // Write then rename, so a watching gateway never reads a half-written file.
  writeFileSync(`${outPath}.tmp`, sdl);
  renameSync(`${outPath}.tmp`, outPath);
  console.log(`composed ${configPath} → ${outPath}`);
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
