/**
 * The page the password-reset mail links to by default (RESET_PAGE_URL's default is this gateway's
 * /reset-password): a form for the new password that calls `resetPassword` with the token of the
 * link's fragment (`#token=…`, which no server receives or logs). Without it the default link
 * answered 404, so a reset could not be finished without writing a client. An app of your own
 * takes over by setting RESET_PAGE_URL to its page.
 *
 * Served in every mode (it holds nothing but a form); its own CSP allows only its own script and
 * style and requests to this origin. The script sends the `ResetPassword` document of the
 * trusted-documents manifest word for word, so the page works with TRUSTED_DOCUMENTS=only too
 * (gateway/test/reset-page.test.ts checks the manifest still holds it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayFeature } from './feature';

export const RESET_PAGE_PATH = '/reset-password';

/** clients/src/operations/auth.graphql's ResetPassword, as the manifest (clients/persisted-operations.json) holds it. */
export const RESET_PASSWORD_DOCUMENT =
  'fragment Session on AuthPayload { accessToken expiresAt refreshToken user { email id name role } } mutation ResetPassword($newPassword: String!, $token: String!) { resetPassword(token: $token, newPassword: $newPassword) { ...Session } }';

const SCRIPT = `(function () {
  var form = document.getElementById('reset');
  var message = document.getElementById('message');
  var button = form.querySelector('button');
  var endpoint = window.location.pathname.replace(/\\/reset-password\\/?$/, '') + '/graphql';
  /** kind: 'failed', 'done' or '' (under way) */
  function show(text, kind) {
    message.textContent = text;
    message.className = kind;
  }
  var token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  // the token leaves the address bar (and the history) at once
  if (window.location.hash) window.history.replaceState(null, '', window.location.pathname);
  if (!token) {
    form.hidden = true;
    show('This link has no reset token. Open the link of the mail again, or ask for a new one.', 'failed');
    return;
  }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var password = form.elements.password.value;
    if (password !== form.elements.confirm.value) return show('The two passwords differ.', 'failed');
    button.disabled = true;
    show('Saving…', '');
    fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'apollo-require-preflight': 'true' },
      body: JSON.stringify({ operationName: 'ResetPassword', query: ${JSON.stringify(RESET_PASSWORD_DOCUMENT)}, variables: { token: token, newPassword: password } }),
    })
      .then(function (res) { return res.json(); })
      .then(function (body) {
        if (body.errors && body.errors.length) {
          button.disabled = false;
          return show(body.errors[0].message, 'failed');
        }
        form.hidden = true;
        show('Your password is changed, and every earlier session has ended. Sign in with the new password.', 'done');
      })
      .catch(function () {
        button.disabled = false;
        show('The server could not be reached. Try again.', 'failed');
      });
  });
})();
`;

const STYLE = `body { font: 16px/1.5 system-ui, sans-serif; margin: 0; display: flex; justify-content: center; }
main { width: 22rem; margin-top: 15vh; }
label { display: block; margin-top: 1rem; }
input { width: 100%; box-sizing: border-box; padding: .4rem; font: inherit; }
button { margin-top: 1.5rem; padding: .5rem 1rem; font: inherit; }
.failed { color: #b00020; }
.done { color: #0a6b2d; }
`;

const PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width,initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <title>CRM · Choose a new password</title>
    <link rel="stylesheet" href="${RESET_PAGE_PATH}/page.css" />
  </head>
  <body>
    <main>
      <h1>Choose a new password</h1>
      <form id="reset">
        <label>New password <input name="password" type="password" autocomplete="new-password" minlength="10" required /></label>
        <label>The same again <input name="confirm" type="password" autocomplete="new-password" minlength="10" required /></label>
        <button type="submit">Set the password</button>
      </form>
      <p id="message" role="status"></p>
    </main>
    <script src="${RESET_PAGE_PATH}/page.js"></script>
  </body>
</html>
`;

/** This origin only: the page's own script and style, requests to /graphql here. */
export const RESET_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const FILES: Record<string, { type: string; body: string }> = {
  [RESET_PAGE_PATH]: { type: 'text/html; charset=utf-8', body: PAGE },
  [`${RESET_PAGE_PATH}/page.js`]: { type: 'text/javascript; charset=utf-8', body: SCRIPT },
  [`${RESET_PAGE_PATH}/page.css`]: { type: 'text/css; charset=utf-8', body: STYLE },
};

function serve(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const file = Object.hasOwn(FILES, path) ? FILES[path] : undefined;
  if (!file) return false;
  res.setHeader('Content-Security-Policy', RESET_PAGE_CSP);
  res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
  res.end(req.method === 'HEAD' ? undefined : file.body);
  return true;
}

export function useResetPage(): GatewayFeature {
  return { name: 'reset-page', before: serve };
}
