/**
 * A GraphQL explorer that works without internet access: GraphiQL (from npm, with React 18's UMD
 * builds) served by the gateway itself at /explorer, with no request leaving the machine. Apollo
 * Sandbox stays the page of GET /graphql while it can load from Apollo's CDN; when it cannot (an
 * offline laptop, a company network, an air-gapped install), that page sends the browser here
 * (landing-page.ts). `/` leads to the explorer through /graphql. On whenever the Sandbox is
 * (SANDBOX: on outside production), since both need introspection.
 *
 * The page is preset to this gateway: queries go to the page's own origin + /graphql, subscriptions
 * to the same URL over ws:// (wss:// behind TLS) with the headers editor's content as graphql-ws
 * connectionParams (`{"Authorization": "Bearer …"}` authenticates both). `?query=`, `?variables=`
 * and `?headers=` open the page with those editors filled (links from docs, tests).
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { EXPLORER_PATH, SANDBOX_DOCUMENT } from './landing-page';
import type { FeatureOptions, GatewayFeature } from './feature';

/** A file of an npm package by its path in the package (the UMD builds are outside the packages' export maps). */
const packageFile = (pkg: string, file: string) => join(dirname(require.resolve(`${pkg}/package.json`)), file);

/** The files the page loads, each from the npm package that ships it. */
const ASSETS: Record<string, { file: string; type: string }> = {
  'react.js': { file: packageFile('react', 'umd/react.production.min.js'), type: 'text/javascript; charset=utf-8' },
  'react-dom.js': { file: packageFile('react-dom', 'umd/react-dom.production.min.js'), type: 'text/javascript; charset=utf-8' },
  'graphiql.js': { file: packageFile('graphiql', 'dist/index.umd.js'), type: 'text/javascript; charset=utf-8' },
  'graphiql.css': { file: packageFile('graphiql', 'dist/style.css'), type: 'text/css; charset=utf-8' },
};

/** Renders GraphiQL into the page: the endpoint and the subscription URL from the page's own location. */
const BOOT_SCRIPT = `(function () {
  var base = window.location.origin + window.location.pathname.replace(/\\/explorer\\/?$/, '');
  var url = base + '/graphql';
  var params = new URLSearchParams(window.location.search);
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: url.replace(/^http/, 'ws') });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: ${JSON.stringify(SANDBOX_DOCUMENT)},
    query: params.get('query') || undefined,
    variables: params.get('variables') || undefined,
    headers: params.get('headers') || undefined,
    defaultEditorToolsVisibility: params.get('headers') ? 'headers' : true,
    shouldPersistHeaders: false,
  }));
})();
`;

const PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width,initial-scale=1" />
    <title>CRM graph · GraphiQL</title>
    <link rel="stylesheet" href="${EXPLORER_PATH}/assets/graphiql.css" />
    <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="${EXPLORER_PATH}/assets/react.js"></script>
    <script src="${EXPLORER_PATH}/assets/react-dom.js"></script>
    <script src="${EXPLORER_PATH}/assets/graphiql.js"></script>
    <script src="${EXPLORER_PATH}/assets/boot.js"></script>
  </body>
</html>
`;

/** The explorer's own CSP: this origin only (fonts are data: URIs in GraphiQL's CSS), ws:// to this gateway. */
export const EXPLORER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-cache' });
  res.end(head ? undefined : body);
}

function serve(req: IncomingMessage, res: ServerResponse): boolean {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const head = req.method === 'HEAD';
  if (path === '/') {
    // the Sandbox when it loads, GraphiQL when it does not (the Sandbox page falls back to it)
    res.writeHead(302, { location: '/graphql' });
    res.end();
    return true;
  }
  if (path === EXPLORER_PATH || path === `${EXPLORER_PATH}/`) {
    res.setHeader('Content-Security-Policy', EXPLORER_CSP);
    send(res, 200, 'text/html; charset=utf-8', PAGE, head);
    return true;
  }
  if (!path.startsWith(`${EXPLORER_PATH}/assets/`)) return false;
  const name = path.slice(`${EXPLORER_PATH}/assets/`.length);
  if (name === 'boot.js') {
    send(res, 200, 'text/javascript; charset=utf-8', BOOT_SCRIPT, head);
    return true;
  }
  const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!asset) return false;
  res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'public, max-age=3600' });
  if (head) res.end();
  else
    createReadStream(asset.file)
      .on('error', () => res.destroy())
      .pipe(res);
  return true;
}

export function useExplorer({ config }: FeatureOptions): GatewayFeature {
  return {
    name: 'explorer',
    before(req, res) {
      if (!config.sandbox || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
      return serve(req, res);
    },
  };
}
