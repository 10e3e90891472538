/**
 * Small subgraphs of a test's own (@apollo/subgraph on Apollo's standalone server, free ports) and
 * the supergraph composed from them: what a gateway test puts behind the gateway instead of the
 * platform's subgraphs.
 */
import { composeServices } from '@apollo/composition';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

export const FEDERATION_LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable", "@external", "@requires", "@provides", "@interfaceObject"])';

export interface StubSubgraph {
  typeDefs: string;
  resolvers: unknown;
}

export interface StubSubgraphs {
  supergraphSdl: string;
  urls: Record<string, string>;
  /** Stops one subgraph (it then cannot be reached), or all that are still running. */
  stop(name?: string): Promise<void>;
}

/** Starts each subgraph (`onRequest` is told of every request it receives, and may hold it) and composes them. */
export async function startStubSubgraphs(subgraphs: Record<string, StubSubgraph>, onRequest?: (subgraph: string) => void | Promise<void>): Promise<StubSubgraphs> {
  const servers = new Map<string, ApolloServer>();
  const stop = async (name?: string) => {
    const stopping = name ? [name] : [...servers.keys()];
    await Promise.all(stopping.map(async (n) => servers.get(n)?.stop()));
    for (const n of stopping) servers.delete(n);
  };
  try {
    const services = [];
    for (const [name, { typeDefs, resolvers }] of Object.entries(subgraphs)) {
      const counter: ApolloServerPlugin = {
        async requestDidStart() {
          await onRequest?.(name);
        },
      };
      const server = new ApolloServer({
        schema: buildSubgraphSchema({ typeDefs: parse(typeDefs), resolvers: resolvers as never }),
        plugins: [ApolloServerPluginInlineTraceDisabled(), counter],
      });
      servers.set(name, server);
      const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
      services.push({ name, url, typeDefs: parse(typeDefs) });
    }
    const composed = composeServices(services);
    if (composed.errors) throw new Error(composed.errors.map((e) => e.message).join('\n'));
    return { supergraphSdl: composed.supergraphSdl, urls: Object.fromEntries(services.map((s) => [s.name, s.url])), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
