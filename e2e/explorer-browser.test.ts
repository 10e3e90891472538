/**
 * The gateway's pages in a real browser (headless Chromium from Debian's packages, driven by
 * playwright-core) with no network beyond this machine: every host name but the gateway's resolves
 * to nothing, as on an offline laptop or an air-gapped install. `/` leads to the Sandbox page, which
 * cannot load Apollo's CDN and hands over to the self-hosted GraphiQL; from that page a query runs
 * and a subscription delivers. The password-reset page (where the reset mail links by default) sets
 * a new password from the mailed token, once. Screenshots are kept in test-artifacts/ (CI keeps them).
 *
 * Chromium: CHROMIUM_PATH, else /usr/bin/chromium (.ci/run installs Debian's package). Without one
 * the test fails under CI=true and is skipped with a warning elsewhere (`npm test` needs no browser).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { eventually } from '@crm/testing';
import { startTestStack, type TestStack } from '@crm/platform';
import { startTestSmtp, type TestSmtp } from './support/smtp';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env.CI === 'true') throw new Error(`Chromium not found at ${CHROMIUM}: .ci/run installs it (apt-get install chromium)`);
if (!available) console.warn(`explorer-browser: no Chromium at ${CHROMIUM}; set CHROMIUM_PATH to run the browser test`);
const browserTest = available ? test : test.skip;

const ARTIFACTS = join(__dirname, '..', 'test-artifacts');

let stack: TestStack;
let browser: Browser;
let smtp: TestSmtp;
beforeAll(async () => {
  if (!available) return;
  smtp = await startTestSmtp();
  stack = await startTestStack({ env: { MAIL_URL: smtp.url, MAIL_POLL_MS: '100' } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      // no network beyond this machine: every name resolves to nothing, 127.0.0.1 is reached directly
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await smtp?.down();
});

/** A page that records every request it makes, and console errors. */
async function openPage(): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  return { page, requests };
}

const origin = () => new URL(stack.gatewayUrl).origin;
const explorerUrl = (params: Record<string, string>) => `${origin()}/explorer?${new URLSearchParams(params).toString()}`;
const resultText = (page: Page) => page.locator('.graphiql-response .result-window').innerText();

browserTest('offline, / leads through the Sandbox page to GraphiQL, which runs a query with only local requests', async () => {
  const { page, requests } = await openPage();
  await page.goto(`${origin()}/`);
  // the Sandbox page's CDN script fails here; the page hands over to the self-hosted explorer
  await page.waitForURL(`${origin()}/explorer`, { timeout: 60_000 });
  await page.locator('.graphiql-execute-button').waitFor({ timeout: 60_000 });
  expect(requests.some((u) => u.startsWith(`${origin()}/graphql`))).toBe(true);

  const explorerRequests = requests.slice(requests.indexOf(`${origin()}/explorer`));
  const admin = await stack.admin();
  const query = 'query Me { me { email role } }';
  await page.goto(explorerUrl({ query, headers: JSON.stringify({ Authorization: `Bearer ${admin.token}` }) }));
  await page.locator('.graphiql-execute-button').click();
  await eventually(async () => (await resultText(page)).includes(admin.email), { timeoutMs: 30_000, intervalMs: 250 });
  expect(await resultText(page)).toContain('"role": "ADMIN"');
  await page.screenshot({ path: join(ARTIFACTS, 'explorer-query.png') });
  // nothing the explorer loaded or asked came from anywhere but this gateway
  const foreign = [...explorerRequests, ...requests.slice(requests.length - 20)].filter((u) => !u.startsWith(origin()) && !u.startsWith('data:'));
  expect(foreign).toEqual([]);
  await page.close();
});

browserTest('a subscription run from the page delivers a notification as it happens', async () => {
  const { page } = await openPage();
  const sales = await stack.user('SALES', 'Brenda Browser');
  await page.goto(
    explorerUrl({
      query: 'subscription Live { notificationAdded { type title } }',
      headers: JSON.stringify({ Authorization: `Bearer ${sales.token}` }),
    }),
  );
  await page.locator('.graphiql-execute-button').click();
  // The subscription starts when the click reaches the gateway; until a notification shows, each round
  // creates one more customer (assigned to its creator: a CUSTOMER_ASSIGNED notification each).
  const name = `Browser Co ${randomUUID().slice(0, 6)}`;
  await eventually(
    async () => {
      const r = await sales.gql('mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }', { input: { name: `${name} ${randomUUID().slice(0, 4)}` } });
      if (r.errors) throw new Error(JSON.stringify(r.errors));
      return eventually(async () => (await resultText(page)).includes('CUSTOMER_ASSIGNED'), { timeoutMs: 3000, intervalMs: 200 });
    },
    { timeoutMs: 60_000, intervalMs: 0 },
  );
  expect(await resultText(page)).toContain(name);
  await page.screenshot({ path: join(ARTIFACTS, 'explorer-subscription.png') });
  await page.close();
});

browserTest('the explorer page has a CSP of its own and serves only its own assets', async () => {
  const res = await fetch(`${origin()}/explorer`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
  const asset = await fetch(`${origin()}/explorer/assets/graphiql.js`, { method: 'HEAD' });
  expect(asset.status).toBe(200);
  expect((await fetch(`${origin()}/explorer/assets/..%2Fpackage.json`)).status).not.toBe(200);
});

browserTest("the reset mail's link: the page sets the new password once, with only local requests", async () => {
  const user = await stack.user('SALES', 'Rita Reset');
  const asked = await stack.gql('mutation($e: String!) { requestPasswordReset(email: $e) }', { e: user.email });
  expect(asked.errors).toBeUndefined();
  const mail = await smtp.mailTo(user.email);
  // the link points at RESET_PAGE_URL (by default this gateway's /reset-password, on port 4000): the
  // same page on this test gateway's port, with the mailed fragment
  const link = /(http:\/\/localhost:4000\/reset-password)#token=([A-Za-z0-9_-]+)/.exec(mail.text);
  expect(link).not.toBeNull();
  const pageUrl = `${origin()}/reset-password#token=${link![2]}`;

  const { page, requests } = await openPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(pageUrl);
  expect(page.url()).toBe(`${origin()}/reset-password`); // the token left the address bar
  await page.fill('input[name=password]', 'a-brand-new-password-1');
  await page.fill('input[name=confirm]', 'a-different-password-2');
  await page.click('button[type=submit]');
  expect(await page.locator('#message').innerText()).toContain('differ');
  await page.fill('input[name=confirm]', 'a-brand-new-password-1');
  await page.click('button[type=submit]');
  await page.locator('#message.done').waitFor({ timeout: 30_000 });
  expect(await page.locator('#message').innerText()).toContain('Your password is changed');
  await page.screenshot({ path: join(ARTIFACTS, 'reset-password.png') });

  const LOGIN = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }';
  expect((await stack.gql(LOGIN, { e: user.email, p: 'a-brand-new-password-1' })).data?.login.user.id).toBe(user.id);
  // the link works once (opened afresh, as from the mail again: not a fragment change of the same page)
  await page.goto('about:blank');
  await page.goto(pageUrl);
  await page.fill('input[name=password]', 'yet-another-password-3');
  await page.fill('input[name=confirm]', 'yet-another-password-3');
  await page.click('button[type=submit]');
  await page.locator('#message.failed').waitFor({ timeout: 30_000 });
  expect(await page.locator('#message').innerText()).toMatch(/invalid or expired/i);
  expect(requests.filter((u) => !u.startsWith(origin()))).toEqual([]);
  expect(errors).toEqual([]);
  await page.close();
});
