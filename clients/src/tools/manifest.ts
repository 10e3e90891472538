/**
 * `npm run codegen` last step: the gateway's trusted-documents manifest. The client preset writes
 * clients/src/gql/persisted-documents.json as { "sha256:<hex>": "<document>" }; the gateway
 * (gateway/src/features/persisted-documents.ts, TRUSTED_DOCUMENTS_PATH) reads
 * { "<hex sha256 of the document>": "<document>" }. This rewrites the keys, checks every hash and
 * writes clients/persisted-operations.json with sorted keys (stable diffs).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');

export function gatewayManifest(presetOutput: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, document] of Object.entries(presetOutput)) {
    const hash = createHash('sha256').update(document).digest('hex');
    const given = key.replace(/^sha256:/, '').toLowerCase();
    if (given !== hash) throw new Error(`persisted document ${key} is not the sha256 of its document (${hash})`);
    out[hash] = document;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

if (require.main === module) {
  const input = process.argv[2] ?? join(ROOT, 'clients/src/gql/persisted-documents.json');
  const output = process.argv[3] ?? join(ROOT, 'clients/persisted-operations.json');
  const manifest = gatewayManifest(JSON.parse(readFileSync(input, 'utf8')) as Record<string, string>);
  writeFileSync(output, `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`${Object.keys(manifest).length} trusted documents → ${output}`);
}
