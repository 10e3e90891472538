/**
 * Apollo Sandbox on GET /graphql (Accept: text/html) in development; off in production unless
 * SANDBOX=true (SANDBOX=false turns it off anywhere). The embedded Sandbox is preset to this very
 * gateway: the endpoint is the page's own URL and not editable, and the subscription endpoint is the
 * same URL over ws:// (wss:// behind TLS) — where the subscriptions feature serves graphql-ws — so
 * `subscription { notificationAdded { … } }` runs from the Sandbox as it is. Telemetry to Apollo
 * is off and cookies are not sent (the API authenticates with `Authorization: Bearer …`).
 *
 * Apollo Server's options cover the endpoint (`embed.endpointIsEditable`, `embed.initialState`) but
 * not the Sandbox's `initialSubscriptionEndpoint`, so the rendered page gets it added next to
 * `initialEndpoint`, derived in the browser from the page's URL (right behind proxies too). If an
 * Apollo Server upgrade changes that page, the gateway refuses to start rather than silently
 * losing the preset (and gateway/test/sandbox.test.ts says so).
 */
import type { ApolloServerPlugin, BaseContext, GraphQLServerListener, LandingPage } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { FeatureOptions, GatewayFeature } from './feature';

/** What the Sandbox opens with: a login, whose accessToken goes into the Authorization header. */
export const SANDBOX_DOCUMENT = `# Log in, then set the header  Authorization: Bearer <accessToken>
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    accessToken
    user { id name role }
  }
}
`;

const ENDPOINT_LINE = 'var initialEndpoint = window.location.href;';
const SANDBOX_CALL = 'new window.EmbeddedSandbox(';
/** Where the self-hosted GraphiQL is served (explorer.ts). */
export const EXPLORER_PATH = '/explorer';

/**
 * Offline (Apollo's CDN unreachable: no EmbeddedSandbox after its script tag failed), the page goes to
 * the self-hosted GraphiQL (explorer.ts) instead of showing "Apollo Sandbox cannot be loaded".
 */
export function withOfflineFallback(html: string): string {
  if (!html.includes(SANDBOX_CALL)) throw new Error('landing page: the Apollo Sandbox page changed shape; cannot add the offline fallback (gateway/src/features/landing-page.ts)');
  return html.replace(
    SANDBOX_CALL,
    `if (typeof window.EmbeddedSandbox !== 'function') window.location.replace(window.location.pathname.replace(/\\/graphql\\/?$/, '') + '${EXPLORER_PATH}');
  else ${SANDBOX_CALL}`,
  );
}
const CONFIG_LINE = /(\.\.\.embeddedSandboxConfig,\s*initialEndpoint,)/;

/** Adds `initialSubscriptionEndpoint` (the page's URL, ws/wss, no query or hash) to the Sandbox page. */
export function withSubscriptionEndpoint(html: string): string {
  if (!html.includes(ENDPOINT_LINE) || !CONFIG_LINE.test(html)) {
    throw new Error('landing page: the Apollo Sandbox page changed shape; cannot preset its subscription endpoint (gateway/src/features/landing-page.ts)');
  }
  return html
    .replace(ENDPOINT_LINE, "var initialEndpoint = window.location.origin + window.location.pathname;\n  var initialSubscriptionEndpoint = initialEndpoint.replace(/^http/, 'ws');")
    .replace(CONFIG_LINE, '$1\n      initialSubscriptionEndpoint,');
}

function sandboxPlugin(): ApolloServerPlugin<BaseContext> {
  const inner = ApolloServerPluginLandingPageLocalDefault({
    embed: { endpointIsEditable: false, runTelemetry: false, initialState: { pollForSchemaUpdates: true } },
    document: SANDBOX_DOCUMENT,
    variables: { email: '', password: '' },
    includeCookies: false,
    footer: false,
  });
  return {
    async serverWillStart(ctx): Promise<GraphQLServerListener | void> {
      const listener = await inner.serverWillStart?.(ctx);
      if (!listener?.renderLandingPage) return listener;
      const render = listener.renderLandingPage.bind(listener);
      return {
        ...listener,
        async renderLandingPage(): Promise<LandingPage> {
          const page = await render();
          const { html } = page;
          const preset = (h: string) => withOfflineFallback(withSubscriptionEndpoint(h));
          if (typeof html === 'string') return { ...page, html: preset(html) };
          // Per-request HTML (a fresh CSP nonce each time): check the shape once now, then on each page.
          preset(await html());
          return { ...page, html: async () => preset(await html()) };
        },
      };
    },
  };
}

export function useLandingPage({ config }: FeatureOptions): GatewayFeature {
  return {
    name: 'landing-page',
    apolloPlugins: [config.sandbox ? sandboxPlugin() : ApolloServerPluginLandingPageDisabled()],
  };
}
