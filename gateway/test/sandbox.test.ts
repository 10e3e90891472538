/**
 * The pages the gateway serves. Apollo Sandbox: in development GET /graphql with Accept: text/html serves the embedded Sandbox,
 * preset to this gateway's endpoint and its graphql-ws subscription endpoint; with
 * NODE_ENV=production nothing of it is served. The page's own script is run against a stand-in
 * `window` to read the endpoints the Sandbox would open with. The gateway alone, over a stub subgraph.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { generateKeySet, keyEnvFor } from '@crm/runtime';
import { MemoryBus } from '@crm/events';
import { readConfig, type PlatformConfig } from '@crm/config';
import { signTestAccessToken } from '@crm/testing';
import { join } from 'node:path';
import { startGateway } from '../src/server';
import { loadManifest } from '../src/features/persisted-documents';
import { RESET_PAGE_CSP, RESET_PAGE_PATH, RESET_PASSWORD_DOCUMENT } from '../src/features/reset-page';
import { FEDERATION_LINK, startStubSubgraphs } from './support/stub-subgraphs';

interface TestGateway {
  config: PlatformConfig;
  gatewayUrl: string;
  stop(): Promise<void>;
}

/** The gateway (with its event bus, for subscriptions) in front of one stub subgraph. */
async function startTestGateway(env: Record<string, string> = {}): Promise<TestGateway> {
  const stubs = await startStubSubgraphs({ hello: { typeDefs: `${FEDERATION_LINK} type Query { hello: String }`, resolvers: { Query: { hello: () => 'hi' } } } });
  const config = readConfig(process.env, { NODE_ENV: 'test', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', KAFKA_NAMESPACE: `t${randomBytes(4).toString('hex')}.`, ...env });
  const bus = new MemoryBus();
  const gateway = await startGateway({ config, bus, supergraphSdl: stubs.supergraphSdl, port: 0, host: '127.0.0.1' });
  return {
    config,
    gatewayUrl: gateway.url,
    async stop() {
      await gateway.stop();
      await bus.close();
      await stubs.stop();
    },
  };
}

/** An access token as auth issues it (the gateway only verifies it). */
const accessToken = (config: PlatformConfig) => signTestAccessToken(config, { role: 'ADMIN', email: 'admin@test.local', tv: 0 }, { subject: randomUUID(), expiresIn: 300 });

const html = (url: string) => fetch(url, { headers: { accept: 'text/html' } });

/** Runs the page's inline scripts with a fake window at `pageUrl` (the CDN's script loaded or not); returns what the page did. */
function runPage(page: string, pageUrl: string, cdnLoaded: boolean): { config?: Record<string, unknown>; replacedBy?: string } {
  const scripts = [...page.matchAll(/<script nonce="[^"]*">([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
  const out: { config?: Record<string, unknown>; replacedBy?: string } = {};
  const url = new URL(pageUrl);
  const window = {
    location: { href: url.href, origin: url.origin, pathname: url.pathname, protocol: url.protocol, replace: (to: string) => (out.replacedBy = to) },
    ...(cdnLoaded
      ? {
          EmbeddedSandbox: function EmbeddedSandbox(config: Record<string, unknown>) {
            out.config = config;
          },
        }
      : {}),
  };
  for (const script of scripts) runInNewContext(script, { window });
  return out;
}

/** What EmbeddedSandbox got when the CDN's script loaded. */
function sandboxConfig(page: string, pageUrl: string): Record<string, unknown> {
  const { config } = runPage(page, pageUrl, true);
  if (!config) throw new Error('the page never created the EmbeddedSandbox');
  return config;
}

describe('in development', () => {
  let stack: TestGateway;
  beforeAll(async () => {
    stack = await startTestGateway();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('GET /graphql (text/html) serves the embedded Sandbox preset to the gateway and its subscriptions', async () => {
    const res = await html(`${stack.gatewayUrl}?from=browser#top`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const page = await res.text();
    expect(page).toContain('embeddable-sandbox.cdn.apollographql.com');

    const config = sandboxConfig(page, `${stack.gatewayUrl}?from=browser#top`);
    expect(config.initialEndpoint).toBe(stack.gatewayUrl);
    expect(config.initialSubscriptionEndpoint).toBe(stack.gatewayUrl.replace(/^http:/, 'ws:'));
    expect(config.endpointIsEditable).toBe(false);
    expect(config.runTelemetry).toBe(false);
    expect(config.initialState).toMatchObject({ includeCookies: false, pollForSchemaUpdates: true });
    expect(String((config.initialState as { document?: string }).document)).toContain('mutation Login');
  });

  test('the preset subscription endpoint is where graphql-ws answers', async () => {
    const page = await (await html(stack.gatewayUrl)).text();
    const { initialSubscriptionEndpoint } = sandboxConfig(page, stack.gatewayUrl);
    const client = createClient({
      url: String(initialSubscriptionEndpoint),
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${accessToken(stack.config)}` },
    });
    try {
      const acknowledged = await new Promise<boolean>((resolve) => {
        client.on('connected', () => resolve(true));
        client.on('closed', () => resolve(false));
      });
      expect(acknowledged).toBe(true);
    } finally {
      await client.dispose();
    }
  });

  test('behind TLS the subscription endpoint is wss://', async () => {
    const page = await (await html(stack.gatewayUrl)).text();
    const config = sandboxConfig(page, 'https://crm.example.com/graphql');
    expect(config.initialEndpoint).toBe('https://crm.example.com/graphql');
    expect(config.initialSubscriptionEndpoint).toBe('wss://crm.example.com/graphql');
  });

  test("offline (the CDN's script did not load), the page goes to the self-hosted explorer instead", async () => {
    const page = await (await html(stack.gatewayUrl)).text();
    expect(runPage(page, stack.gatewayUrl, false)).toEqual({ replacedBy: '/explorer' });
    expect(runPage(page, 'https://crm.example.com/graphql', false)).toEqual({ replacedBy: '/explorer' });
    // `/` leads there through the Sandbox page; the explorer and its assets come from this gateway
    const root = await fetch(stack.gatewayUrl.replace(/\/graphql$/, '/'), { redirect: 'manual' });
    expect([root.status, root.headers.get('location')]).toEqual([302, '/graphql']);
    const explorer = await fetch(stack.gatewayUrl.replace(/\/graphql$/, '/explorer'));
    const body = await explorer.text();
    expect(explorer.status).toBe(200);
    for (const src of [...body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)) {
      expect(src).toMatch(/^\/explorer\/assets\//);
      expect((await fetch(new URL(src, stack.gatewayUrl))).status).toBe(200);
    }
  });

  test('GraphQL over GET still answers JSON', async () => {
    const res = await fetch(`${stack.gatewayUrl}?query=${encodeURIComponent('{ __typename }')}`, { headers: { accept: 'application/json', 'apollo-require-preflight': 'true' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });
});

describe('with NODE_ENV=production', () => {
  let stack: TestGateway;
  beforeAll(async () => {
    // production starts only with the gateway's own keys
    stack = await startTestGateway({ NODE_ENV: 'production', ...keyEnvFor('gateway', generateKeySet([])) });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('no Sandbox page is served', async () => {
    const res = await html(stack.gatewayUrl);
    const body = await res.text();
    expect(res.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(body).not.toContain('EmbeddedSandbox');
    expect(body).not.toContain('apollographql.com');
  });

  test('nor the explorer, nor a redirect from /', async () => {
    const base = stack.gatewayUrl.replace(/\/graphql$/, '');
    for (const path of ['/explorer', '/explorer/assets/graphiql.js', '/']) {
      const res = await fetch(`${base}${path}`, { redirect: 'manual' });
      expect([path, res.status]).toEqual([path, 404]);
    }
  });

  test('the password-reset page (RESET_PAGE_URL by default) is served, with a CSP of its own', async () => {
    const base = stack.gatewayUrl.replace(/\/graphql$/, '');
    const page = await fetch(`${base}${RESET_PAGE_PATH}`);
    expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
    expect(page.headers.get('content-security-policy')).toBe(RESET_PAGE_CSP);
    const html = await page.text();
    expect(html).toContain(`<script src="${RESET_PAGE_PATH}/page.js"></script>`);
    expect(html).not.toMatch(/<script>|<style>/); // nothing inline: the CSP allows none
    for (const asset of ['page.js', 'page.css']) expect((await fetch(`${base}${RESET_PAGE_PATH}/${asset}`)).status).toBe(200);
    expect((await fetch(`${base}${RESET_PAGE_PATH}/..%2F..%2Fpackage.json`)).status).toBe(404);
  });

  test("the reset page's document is the trusted-documents manifest's, word for word (it works with TRUSTED_DOCUMENTS=only)", () => {
    const manifest = loadManifest(join(__dirname, '..', '..', 'clients', 'persisted-operations.json'));
    expect([...manifest.values()]).toContain(RESET_PASSWORD_DOCUMENT);
  });
});
