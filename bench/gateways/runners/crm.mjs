// ============================================================================
// CRM GATEWAY ADAPTER  —  starts this repository's own gateway (gateway/)
// for the side-by-side benchmark, with a given supergraph and auth off.
// ============================================================================
//
// Interface the adapter expects from the project's gateway package
// (`gateway/package.json` "main", today `gateway/src/index.ts`; TypeScript is
// loaded through the repo root's `tsx`, compiled JS works too):
//
//   PREFERRED (the "create the HTTP server from a supergraph SDL" function):
//
//     export function createGatewayServer(options: {
//       supergraphSdl: string;          // composed supergraph SDL (not a path)
//       auth?: boolean;                 // the adapter passes false: no auth
//       config?: PlatformConfig;        // readConfig() result, see below
//       logger?: Logger;
//     }): http.Server | Promise<http.Server>
//       // or Promise<{ server: http.Server }>; or a (req, res) request
//       // listener function. The server must NOT be listening yet: the
//       // adapter calls server.listen(PORT, HOST). If it is already
//       // listening, the adapter leaves it as is.
//
//   Export names tried, in order: createGatewayServer, createServer,
//   createHttpServer (override with CRM_GATEWAY_EXPORT).
//
//   FALLBACK (what gateway/src/server.ts exports today):
//
//     export async function startGateway(options: {
//       config: PlatformConfig; supergraphSdl?: string; port?: number; host?: string;
//     }): Promise<{ url: string; port: number; stop(): Promise<void> }>
//
//   config is built with `readConfig(process.env, overrides)` from @crm/config
//   when that package exports it, with NODE_ENV=production (like every other
//   gateway in the benchmark), LOG_LEVEL=warn, throwaway 32+ char secrets,
//   RATE_LIMIT_POINTS raised so the rate limiter does not turn the load test
//   into 429s, and MAX_COST raised so the cost limit accepts the benchmark
//   query (estimated cost ~350k). The limiter and cost estimate still run.
//   Add or change any config variable with CRM_ENV_<NAME>=value (e.g.
//   CRM_ENV_RATE_LIMIT_ENABLED=false). No Authorization header is ever sent.
//
// Modes:
//   node runners/crm.mjs --probe   exit 0 if the gateway is importable and has
//                                  one of the functions above; exit 3 with a
//                                  one-line reason on stdout otherwise (run.mjs
//                                  then skips crm with that note).
//   node runners/crm.mjs           serve on HOST:PORT (default 127.0.0.1:4000)
//                                  with SUPERGRAPH_FILE, in WORKERS processes.
//
// Env: REPO_ROOT (default ../../.. from here), CRM_GATEWAY_ENTRY (a module
// path to import instead of the gateway package), CRM_GATEWAY_EXPORT.
// ============================================================================
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { runWithWorkers, listenOptions } from '../lib/workers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(process.env.REPO_ROOT ?? path.join(here, '..', '..', '..'));
const CREATE_EXPORTS = process.env.CRM_GATEWAY_EXPORT ? [process.env.CRM_GATEWAY_EXPORT] : ['createGatewayServer', 'createServer', 'createHttpServer'];

class Skip extends Error {}

function gatewayEntry() {
  if (process.env.CRM_GATEWAY_ENTRY) return path.resolve(process.env.CRM_GATEWAY_ENTRY);
  const pkgFile = path.join(REPO_ROOT, 'gateway', 'package.json');
  if (!existsSync(pkgFile)) throw new Skip(`no ${path.relative(REPO_ROOT, pkgFile)}`);
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  const main = pkg.main ?? 'index.js';
  const entry = path.join(REPO_ROOT, 'gateway', main);
  if (!existsSync(entry)) throw new Skip(`gateway "main" ${main} does not exist`);
  return entry;
}

let tsxRegistered = false;
async function importTs(file) {
  if (/\.[cm]?ts$/.test(file) && !tsxRegistered) {
    // Register tsx (from the repo root) for both ESM and CJS, so a TypeScript
    // gateway compiled as CommonJS (the repo's tsconfig) loads with its requires.
    const rootRequire = createRequire(path.join(REPO_ROOT, 'package.json'));
    try {
      const pkgFile = rootRequire.resolve('tsx/package.json');
      const exports = JSON.parse(readFileSync(pkgFile, 'utf8')).exports;
      const pick = (e) => (typeof e === 'string' ? e : (e.import?.default ?? e.import));
      const load = (sub) => import(pathToFileURL(path.join(path.dirname(pkgFile), pick(exports[sub]))).href);
      (await load('./cjs/api')).register();
      (await load('./esm/api')).register();
      tsxRegistered = true;
    } catch (err) {
      throw new Skip(`the gateway is TypeScript and tsx could not be loaded from the repo root (run \`npm install\` there): ${err?.message ?? err}`);
    }
  }
  return import(pathToFileURL(file).href);
}

const unwrap = (m) => (m && m.default && typeof m.default === 'object' ? { ...m.default, ...m } : m);

async function loadGateway() {
  const entry = gatewayEntry();
  let mod;
  try {
    mod = unwrap(await importTs(entry));
  } catch (err) {
    if (err instanceof Skip) throw err;
    throw new Skip(`importing ${path.relative(REPO_ROOT, entry)} failed: ${String(err?.message ?? err).split('\n')[0]}`);
  }
  for (const name of CREATE_EXPORTS) {
    if (typeof mod[name] === 'function') return { kind: 'create', name, fn: mod[name], mod, entry };
  }
  if (typeof mod.startGateway === 'function') return { kind: 'start', name: 'startGateway', fn: mod.startGateway, mod, entry };
  throw new Skip(`${path.relative(REPO_ROOT, entry)} exports none of ${[...CREATE_EXPORTS, 'startGateway'].join(', ')}`);
}

/** A workspace package's entry module, or {} when this checkout has no such package. */
async function workspacePackage(name) {
  const pkg = path.join(REPO_ROOT, 'packages', name, 'package.json');
  if (!existsSync(pkg)) return {};
  const main = JSON.parse(readFileSync(pkg, 'utf8')).main ?? 'index.js';
  try {
    return unwrap(await importTs(path.join(REPO_ROOT, 'packages', name, main)));
  } catch {
    return {};
  }
}

async function buildConfig(gw) {
  // configuration and keys: @crm/config and @crm/runtime since the split of packages/kit; @crm/kit before it
  const configPkg = await workspacePackage('config');
  const runtimePkg = await workspacePackage('runtime');
  const kitPkg = await workspacePackage('kit');
  const kit = { ...kitPkg, ...configPkg, ...runtimePkg };
  const readConfig =
    typeof kit.readServiceConfig === 'function'
      ? (env, overrides) => kit.readServiceConfig('gateway', env, overrides)
      : typeof gw.mod.readConfig === 'function'
        ? gw.mod.readConfig
        : kit.readConfig;
  if (typeof readConfig !== 'function') return undefined;
  const { port, host } = listenOptions();
  const overrides = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    // production needs the gateway's own keys: a set made for this run (kit keys.ts), or the HMAC
    // secrets of versions before the asymmetric keys
    ...(typeof kit.generateKeySet === 'function' && typeof kit.keyEnvFor === 'function'
      ? kit.keyEnvFor('gateway', kit.generateKeySet())
      : { INTERNAL_SECRET: randomBytes(32).toString('hex'), JWT_SECRET: randomBytes(32).toString('hex') }),
    RATE_LIMIT_POINTS: '1000000000',
    // The benchmark query's estimated cost (~350k) is far above the default
    // MAX_COST; the estimate is still computed on every request.
    MAX_COST: '1000000000',
    PORT: String(port),
    HOST: host,
    SUPERGRAPH_PATH: process.env.SUPERGRAPH_FILE,
  };
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('CRM_ENV_')) overrides[k.slice(8)] = v;
  return readConfig(process.env, overrides);
}

async function serve() {
  const gw = await loadGateway();
  const supergraphSdl = readFileSync(process.env.SUPERGRAPH_FILE, 'utf8');
  const { port, host } = listenOptions();
  const config = await buildConfig(gw);
  if (gw.kind === 'start') {
    const rt = await gw.fn({ config, supergraphSdl, port, host });
    console.log(`crm gateway (startGateway) ready at ${rt?.url ?? `${host}:${port}`} (pid ${process.pid})`);
    return;
  }
  let out = await gw.fn({ supergraphSdl, auth: false, config, port, host });
  if (out && !(out instanceof http.Server) && out.server instanceof http.Server) out = out.server;
  if (typeof out === 'function') out = http.createServer(out);
  if (!(out instanceof http.Server)) throw new Error(`${gw.name}() returned neither an http.Server, {server}, nor a request listener`);
  if (!out.listening)
    await new Promise((resolve, reject) => {
      out.once('error', reject);
      out.listen(port, host, resolve);
    });
  console.log(`crm gateway (${gw.name}) ready at http://${host}:${port}/graphql (pid ${process.pid})`);
}

if (process.argv.includes('--probe')) {
  try {
    const gw = await loadGateway();
    console.log(`ok: ${path.relative(REPO_ROOT, gw.entry)} exports ${gw.name}()`);
    process.exit(0);
  } catch (err) {
    console.log(err instanceof Skip ? err.message : `probe failed: ${err?.stack ?? err}`);
    process.exit(3);
  }
} else {
  await runWithWorkers(serve);
}
