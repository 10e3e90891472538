// "Ceiling": a raw node:http server that drains the request body and answers
// with the final, pre-computed response (EXPECTED_FILE). It measures what the
// harness itself (load generator, HTTP stack, 87 KB bodies) can do on this
// machine; no gateway can beat it. Env: PORT, HOST, WORKERS, EXPECTED_FILE.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { runWithWorkers, listenOptions } from '../lib/workers.mjs';

await runWithWorkers(async () => {
  const body = readFileSync(process.env.EXPECTED_FILE);
  const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length };
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      res.writeHead(200, headers);
      res.end(body);
    });
  });
  const { port, host } = listenOptions();
  await new Promise((r) => server.listen(port, host, r));
  console.log(`ceiling ready at http://${host}:${port}/graphql (pid ${process.pid})`);
});
