// One process serving the four subgraphs on raw node:http, one port each
// (SUBGRAPH_BASE_PORT+1..+4, default 4591..4594), 127.0.0.1 only.
//
// Each response is cached by request body (Map<body string, Buffer>) so that
// the subgraphs are never the bottleneck: after warm-up every subgraph request
// is a Map lookup + socket write. The cache is bounded (SUBGRAPH_CACHE_MAX).
//
// GET /health -> 200 "ok"; GET /__stats -> {"requests":N,"hits":N,"perSubgraph":{...}}
import http from 'node:http';
import { parse, validate, execute } from 'graphql';
import { buildSchemas, subgraphPorts, SUBGRAPH_NAMES } from './schemas.mjs';

const CACHE_MAX = Number(process.env.SUBGRAPH_CACHE_MAX ?? 10000);
const schemas = buildSchemas();
const stats = { requests: 0, hits: 0, perSubgraph: Object.fromEntries(SUBGRAPH_NAMES.map((n) => [n, 0])) };

async function runGraphQL(schema, body) {
  let payload;
  try {
    payload = JSON.parse(body);
  } catch {
    return { status: 400, result: { errors: [{ message: 'invalid JSON body' }] } };
  }
  let document;
  try {
    document = parse(payload.query);
  } catch (e) {
    return { status: 400, result: { errors: [{ message: e.message }] } };
  }
  const errors = validate(schema, document);
  if (errors.length) return { status: 400, result: { errors: errors.map((e) => ({ message: e.message })) } };
  // @apollo/subgraph's _entities resolver may return promises: await.
  const result = await execute({
    schema,
    document,
    variableValues: payload.variables ?? undefined,
    operationName: payload.operationName ?? undefined,
  });
  return { status: 200, result };
}

function makeHandler(name) {
  const schema = schemas[name];
  const cache = new Map();
  const headers = { 'content-type': 'application/json; charset=utf-8' };
  return (req, res) => {
    if (req.method === 'GET') {
      if (req.url === '/health') {
        res.writeHead(200);
        res.end('ok');
        return;
      }
      if (req.url === '/__stats') {
        res.writeHead(200, headers);
        res.end(JSON.stringify(stats));
        return;
      }
      res.writeHead(404);
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405);
      res.end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = chunks.length === 1 ? chunks[0].toString() : Buffer.concat(chunks).toString();
      stats.requests++;
      stats.perSubgraph[name]++;
      let buf = cache.get(body);
      if (buf) {
        stats.hits++;
      } else {
        const { status, result } = await runGraphQL(schema, body);
        buf = Buffer.from(JSON.stringify(result));
        if (status !== 200) {
          res.writeHead(status, { ...headers, 'content-length': buf.length });
          res.end(buf);
          return;
        }
        if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value);
        cache.set(body, buf);
      }
      res.writeHead(200, { ...headers, 'content-length': buf.length });
      res.end(buf);
    });
  };
}

const ports = subgraphPorts();
const servers = [];
await Promise.all(
  SUBGRAPH_NAMES.map(
    (name) =>
      new Promise((resolve, reject) => {
        const server = http.createServer({ keepAliveTimeout: 65_000 }, makeHandler(name));
        server.on('error', reject);
        server.listen(ports[name], '127.0.0.1', () => resolve());
        servers.push(server);
      }),
  ),
);
console.log(`subgraphs ready: ${SUBGRAPH_NAMES.map((n) => `${n}=${ports[n]}`).join(' ')}`);

const stop = () => {
  for (const s of servers) s.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
