/**
 * Passwords through the gateway, with mail delivered to a real SMTP server (the `smtp-server`
 * package) by auth's mail outbox: a forgotten password (the test follows the mailed link's token),
 * a changed password, both ending every other session; an unknown email answered alike with the
 * same work and no mail; single-use and expiring tokens; SMTP down then up (the mail arrives);
 * limits like login's.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { eventually } from '@crm/testing';
import { dataOf, errorCode, startTestStack, type TestStack, type TestUser } from '@crm/platform';
import { startTestSmtp, type TestSmtp } from './support/smtp';
import { crmClient } from '../clients/src/cli';
import { LoginDocument, RegisterDocument, RequestPasswordResetDocument, ResetPasswordDocument } from '../clients/src/gql/graphql';

let stack: TestStack;
let smtp: TestSmtp;
beforeAll(async () => {
  smtp = await startTestSmtp();
  stack = await startTestStack({
    only: ['auth'],
    env: { MAIL_URL: smtp.url, MAIL_POLL_MS: '100', MAIL_RETRY_MAX_MS: '500', RESET_PAGE_URL: 'https://crm.example.test/reset' },
  });
});
afterAll(async () => {
  await stack?.stop();
  await smtp?.down();
});

const ME = '{ me { id } }';
const LOGIN = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }';
const REFRESH = 'mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }';
const REQUEST = 'mutation($e: String!) { requestPasswordReset(email: $e) }';
const RESET = 'mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) { accessToken refreshToken user { id email } } }';
const CHANGE = 'mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { accessToken refreshToken user { id } } }';
const PASSWORD = 'password-1234'; // the test client's

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The token of the reset link in a mail (the link's fragment). */
function linkToken(text: string): { link: string; token: string } {
  const m = /(https:\/\/crm\.example\.test\/reset#token=([A-Za-z0-9_-]+))/.exec(text);
  if (!m) throw new Error(`no reset link in the mail:\n${text}`);
  return { link: m[1]!, token: m[2]! };
}

/** An access token the gateway refuses (revocation reaches it through user.events). */
const refusedEventually = (token: string) => eventually(async () => errorCode(await stack.gql(ME, {}, token)) === 'UNAUTHENTICATED', { timeoutMs: 30_000, intervalMs: 100 });

test("forgotten password: the mailed link's token sets a new password once, and every earlier session ends", async () => {
  const u = await stack.user();
  const other = dataOf(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }), 'login'); // a second session

  expect(dataOf(await stack.gql(REQUEST, { e: u.email.toUpperCase() }), 'requestPasswordReset')).toBe(true);
  const mail = await smtp.mailTo(u.email);
  const { token } = linkToken(mail.text);
  expect(mail.raw).toMatch(/Subject: Reset your CRM password/);

  // stored hashed only; the sent mail's body is cleared
  const rows = await stack.sql<{ token_hash: string; user_id: string }>('auth', 'SELECT token_hash, user_id FROM password_reset_tokens WHERE user_id = ?', [u.id]);
  expect(rows).toEqual([{ token_hash: sha256(token), user_id: u.id }]);
  const sent = await eventually(async () =>
    (
      await stack.sql<{ status: string; text_body: string | null }>('auth', `SELECT status, text_body FROM mail_outbox WHERE to_address = ? AND subject LIKE 'Reset%'`, [u.email])
    ).find((r) => r.status === 'sent'),
  );
  expect(sent.text_body).toBeNull();

  const reset = await stack.gql(RESET, { t: token, p: 'brand-new-password-1' });
  expect(reset.errors).toBeUndefined();
  expect(reset.data.resetPassword.user).toEqual({ id: u.id, email: u.email });
  expect((await stack.gql(ME, {}, reset.data.resetPassword.accessToken)).data.me.id).toBe(u.id);

  // the token works once
  expect(errorCode(await stack.gql(RESET, { t: token, p: 'another-password-22' }))).toBe('UNAUTHENTICATED');
  // old password refused, new one accepted
  expect(errorCode(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }))).toBe('UNAUTHENTICATED');
  dataOf(await stack.gql(LOGIN, { e: u.email, p: 'brand-new-password-1' }), 'login');
  // every earlier session ends: refresh tokens at once, access tokens at the gateway
  expect(errorCode(await stack.gql(REFRESH, { t: u.refreshToken }))).toBe('UNAUTHENTICATED');
  expect(errorCode(await stack.gql(REFRESH, { t: other.refreshToken }))).toBe('UNAUTHENTICATED');
  await refusedEventually(u.token);
  await refusedEventually(other.accessToken);
  // and the owner is told
  const notice = await eventually(async () => smtp.received.find((m) => m.to.includes(u.email) && m.raw.includes('password was changed')));
  expect(notice.text).toMatch(/reset with a link/);
});

test('an unknown or deactivated email: the same answer, the same work (token and mail rows), and no mail sent', async () => {
  const admin = await stack.admin();
  const gone = await stack.user();
  dataOf(await admin.gql('mutation($id: ID!) { deleteUser(id: $id) { id } }', { id: gone.id }), 'deleteUser');
  const known = await stack.user();
  const unknown = `nobody-${Date.now()}@test.local`;

  const answers = await Promise.all([unknown, gone.email].map(async (e) => stack.gql(REQUEST, { e })));
  for (const a of answers) expect({ data: a.data, errors: a.errors }).toEqual({ data: { requestPasswordReset: true }, errors: undefined });
  // the same rows as for a known user, marked so they never work or leave
  for (const address of [unknown, gone.email]) {
    const mails = await stack.sql<{ status: string }>('auth', 'SELECT status FROM mail_outbox WHERE to_address = ?', [address]);
    expect(mails).toEqual([{ status: 'suppressed' }]);
  }
  const tokens = await stack.sql<{ n: string }>('auth', 'SELECT count(*) AS n FROM password_reset_tokens WHERE user_id IS NULL');
  expect(Number(tokens[0]!.n)).toBeGreaterThanOrEqual(2);

  // a later request of a known user is delivered; nothing went to the other two
  dataOf(await stack.gql(REQUEST, { e: known.email }), 'requestPasswordReset');
  await smtp.mailTo(known.email);
  expect(smtp.received.filter((m) => m.to.includes(unknown) || m.to.includes(gone.email))).toEqual([]);
  // bad input is refused with a code and writes nothing
  const bad = await stack.gql(REQUEST, { e: 'not-an-email' });
  expect(errorCode(bad)).toBe('BAD_USER_INPUT');
  expect(await stack.sql('auth', 'SELECT id FROM mail_outbox WHERE to_address = ?', ['not-an-email'])).toEqual([]);
});

test('a reset token past its expiry is refused and changes nothing', async () => {
  const u = await stack.user();
  dataOf(await stack.gql(REQUEST, { e: u.email }), 'requestPasswordReset');
  const { token } = linkToken((await smtp.mailTo(u.email)).text);
  await stack.sql('auth', `UPDATE password_reset_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = ?`, [sha256(token)]);
  expect(errorCode(await stack.gql(RESET, { t: token, p: 'never-set-password-1' }))).toBe('UNAUTHENTICATED');
  dataOf(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }), 'login');
  expect(errorCode(await stack.gql(RESET, { t: 'made-up-token', p: 'never-set-password-1' }))).toBe('UNAUTHENTICATED');
});

test('changePassword: a wrong current password changes nothing; the right one returns fresh tokens and ends every other session', async () => {
  const u = await stack.user();
  const other = dataOf(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }), 'login');

  const wrong = await u.gql(CHANGE, { c: 'not-my-password', n: 'my-new-password-1' });
  expect(errorCode(wrong)).toBe('BAD_USER_INPUT');
  expect(wrong.errors?.[0]?.extensions?.field).toBe('currentPassword');
  const short = await u.gql(CHANGE, { c: PASSWORD, n: 'short' });
  expect(short.errors?.[0]?.extensions?.field).toBe('newPassword');
  expect(errorCode(await stack.gql(CHANGE, { c: PASSWORD, n: 'my-new-password-1' }))).toBe('UNAUTHENTICATED');
  dataOf(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }), 'login'); // unchanged so far

  const changed = dataOf<{ accessToken: string; refreshToken: string; user: { id: string } }>(await u.gql(CHANGE, { c: PASSWORD, n: 'my-new-password-1' }), 'changePassword');
  expect(changed.user.id).toBe(u.id);
  expect(errorCode(await stack.gql(REFRESH, { t: other.refreshToken }))).toBe('UNAUTHENTICATED');
  expect(errorCode(await stack.gql(REFRESH, { t: u.refreshToken }))).toBe('UNAUTHENTICATED');
  await refusedEventually(other.accessToken);
  await refusedEventually(u.token);
  // the fresh session works, its refresh token too
  expect((await stack.gql(ME, {}, changed.accessToken)).data.me.id).toBe(u.id);
  dataOf(await stack.gql(REFRESH, { t: changed.refreshToken }), 'refreshToken');
  expect(errorCode(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }))).toBe('UNAUTHENTICATED');
  dataOf(await stack.gql(LOGIN, { e: u.email, p: 'my-new-password-1' }), 'login');
  // the owner is told, by mail through the real SMTP server
  const notice = await eventually(async () => smtp.received.find((m) => m.to.includes(u.email) && m.raw.includes('password was changed')));
  expect(notice.text).toMatch(/Every other session of your account has been signed out/);
});

test('SMTP down, then up: the reset mail waits in the outbox, is retried, and arrives; its token works', async () => {
  const u: TestUser = await stack.user();
  await smtp.down();
  try {
    dataOf(await stack.gql(REQUEST, { e: u.email }), 'requestPasswordReset');
    // the sender has tried and failed at least twice (server away): the mail is still pending
    const failing = await eventually(
      async () => {
        const [row] = await stack.sql<{ status: string; attempts: number; last_error: string | null }>(
          'auth',
          'SELECT status, attempts, last_error FROM mail_outbox WHERE to_address = ?',
          [u.email],
        );
        return row && row.attempts >= 2 ? row : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(failing.status).toBe('pending');
    expect(failing.last_error).toBeTruthy();
  } finally {
    await smtp.up();
  }
  const { token } = linkToken((await smtp.mailTo(u.email)).text);
  dataOf(await stack.gql(RESET, { t: token, p: 'after-outage-password' }), 'resetPassword');
});

test('password mutations are limited like login: repeated reset requests and wrong current passwords get RATE_LIMITED', async () => {
  const limit = stack.config.LOGIN_FAILS_PER_ACCOUNT_IP;
  const u = await stack.user();
  // the same counting for a known and an unknown email (a refusal discloses nothing)
  for (const e of [u.email, `ghost-${Date.now()}@test.local`]) {
    for (let i = 0; i < limit; i += 1) expect(dataOf(await stack.gql(REQUEST, { e }), 'requestPasswordReset')).toBe(true);
    const refused = await stack.gql(REQUEST, { e });
    expect(errorCode(refused)).toBe('RATE_LIMITED');
    expect(refused.status).toBe(429);
  }
  for (let i = 0; i < limit; i += 1) expect(errorCode(await u.gql(CHANGE, { c: `wrong-${i}-password`, n: 'whatever-password-1' }))).toBe('BAD_USER_INPUT');
  // blocked now, even with the right password: nothing changes
  expect(errorCode(await u.gql(CHANGE, { c: PASSWORD, n: 'whatever-password-1' }))).toBe('RATE_LIMITED');
  dataOf(await stack.gql(LOGIN, { e: u.email, p: PASSWORD }), 'login');
});

test("with TRUSTED_DOCUMENTS=only, the typed client's generated documents carry the whole reset flow (by hash)", async () => {
  const only = await startTestStack({
    only: ['auth'],
    env: {
      TRUSTED_DOCUMENTS: 'only',
      TRUSTED_DOCUMENTS_PATH: join(__dirname, '../clients/persisted-operations.json'),
      MAIL_URL: smtp.url,
      MAIL_POLL_MS: '100',
      RESET_PAGE_URL: 'https://crm.example.test/reset',
    },
  });
  try {
    const client = crmClient(only.gatewayUrl);
    const email = `typed-${Date.now()}@test.local`;
    await client.request(RegisterDocument, { input: { email, password: PASSWORD, name: 'Tess Typed' } });
    expect(await client.request(RequestPasswordResetDocument, { email })).toEqual({ requestPasswordReset: true });
    const { token } = linkToken((await smtp.mailTo(email)).text);
    const reset = await client.request(ResetPasswordDocument, { token, newPassword: 'typed-new-password' });
    expect(reset.resetPassword.user.email).toBe(email);
    await client.request(LoginDocument, { email, password: 'typed-new-password' });
    expect(client.stats).toEqual({ byHash: 4, withText: 0 });
  } finally {
    await only.stop();
  }
});
