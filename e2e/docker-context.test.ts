/**
 * What `docker build .` sends and copies (issue 27 point 6): the build context computed from the
 * working tree with .dockerignore's own semantics (@balena/dockerignore, Docker-compatible), and the
 * Dockerfile's COPY lines. No secret file (.env, *.env, .npmrc, keys, .data) can reach an image,
 * wherever it is put; what the image runs is there. Reads files only; builds no image.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import dockerignore from '@balena/dockerignore';

const ROOT = join(__dirname, '..');
const rules = dockerignore().add(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
const sent = (path: string) => !rules.ignores(path);

/** Every file of the working tree Docker would send (node_modules and .git walked only to the first level: they must be excluded whole). */
function context(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = relative(ROOT, join(dir, entry.name)).split('\\').join('/');
      if (entry.isDirectory()) {
        if (entry.name === 'node_modules' || entry.name === '.git') {
          expect(sent(`${path}/anything`)).toBe(false);
          continue;
        }
        walk(join(dir, entry.name));
      } else if (sent(path)) {
        out.push(path);
      }
    }
  };
  walk(ROOT);
  return out.sort();
}

const SECRET = /(^|\/)(\.env(\..*)?|[^/]*\.env|\.npmrc|[^/]*\.(pem|key|p12|pfx)|id_(rsa|ed25519)[^/]*)$|(^|\/)\.data\//;

test('secret files are never in the build context, wherever they are put', () => {
  const planted = [
    '.env',
    '.env.production',
    'crm.env',
    'prod.env',
    '.npmrc',
    '.data/pg/base/1',
    '.data/keys/auth.pem',
    'keys/jwt.pem',
    'keys/auth.key',
    'id_rsa',
    'id_ed25519.pub',
    'gateway/src/.env',
    'subgraphs/auth/src/.npmrc',
    'subgraphs/auth/src/signing.key',
    'packages/config/src/crm.env',
    'apps/platform/src/.data/x',
    'subgraphs/customer/migrations/.env',
    'deploy/secrets.example.yaml',
    'docker/postgres-init.sql',
  ];
  expect(planted.filter(sent)).toEqual([]);
});

test('the real build context holds no secret file, no tests, no node_modules, and everything the image runs', () => {
  const files = context();
  expect(files.filter((f) => SECRET.test(f))).toEqual([]);
  expect(files.filter((f) => /(^|\/)(node_modules|\.git|test|bench|coverage|\.data)\//.test(f) || f.endsWith('.test.ts'))).toEqual([]);
  for (const needed of [
    'package.json',
    'package-lock.json',
    'supergraph.yaml',
    'gateway/src/main.ts',
    'gateway/src/compose-cli.ts',
    'packages/runtime/src/index.ts',
    'packages/config/src/index.ts',
    'apps/platform/src/migrate-cli.ts',
    'subgraphs/auth/src/main.ts',
    'subgraphs/auth/src/schema.graphql',
    'subgraphs/auth/migrations/index.ts',
    'clients/persisted-operations.json',
  ])
    expect(files).toContain(needed);
});

test('the Dockerfile copies named paths only (no COPY . .), each of them in the context', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const copies = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)].map((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
  expect(copies.length).toBeGreaterThan(0);
  const files = context();
  for (const sources of copies) {
    for (const source of sources) {
      expect(['.', './', '*']).not.toContain(source);
      const prefix = source.replace(/\/$/, '');
      expect(files.some((f) => f === prefix || f.startsWith(`${prefix}/`))).toBe(true);
    }
  }
});
