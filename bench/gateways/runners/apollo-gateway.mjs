// Plain @apollo/gateway + @apollo/server, as documented (startStandaloneServer),
// reading the supergraph SDL from SUPERGRAPH_FILE. Env: PORT, HOST, WORKERS.
import { readFileSync } from 'node:fs';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { ApolloGateway } from '@apollo/gateway';
import { runWithWorkers, listenOptions } from '../lib/workers.mjs';

await runWithWorkers(async () => {
  const supergraphSdl = readFileSync(process.env.SUPERGRAPH_FILE, 'utf8');
  const gateway = new ApolloGateway({ supergraphSdl });
  const server = new ApolloServer({ gateway });
  const { url } = await startStandaloneServer(server, { listen: listenOptions() });
  console.log(`apollo-gateway ready at ${url} (pid ${process.pid})`);
});
