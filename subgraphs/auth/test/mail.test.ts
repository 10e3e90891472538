/**
 * Auth's mail outbox against a real SMTP server (`smtp-server`): a mail staged in a transaction that
 * rolls back is never written nor sent; a committed one is. Without MAIL_URL, mails are .eml files
 * under DATA_DIR/mail, and the links they carry are logged in development only.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, startTestSubgraph, type TestSubgraph } from '@crm/testing';
import { readConfig } from '@crm/config';
import { type Logger } from '@crm/telemetry';
import { authSubgraph } from '../src';
import { createMailer } from '../src/mail';
import { stageResetRequest } from '../src/password-reset';
import { startTestSmtp, type TestSmtp } from '../../../e2e/support/smtp';

const ADMIN = { email: 'admin@test.local', password: 'admin-Pw-test-7q4k2z' };

let auth: TestSubgraph;
let smtp: TestSmtp;
beforeAll(async () => {
  smtp = await startTestSmtp();
  auth = await startTestSubgraph(authSubgraph, { env: { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, MAIL_URL: smtp.url, MAIL_POLL_MS: '100' } });
});
afterAll(async () => {
  await auth?.stop();
  await smtp?.down();
});

test('a reset mail staged in a transaction that rolls back is neither written nor sent; a committed one is sent', async () => {
  const em = auth.runtime.fork();
  await em.begin();
  await stageResetRequest(em, ADMIN.email, auth.config);
  await em.flush(); // written inside the transaction…
  expect(await em.execute('SELECT id FROM mail_outbox WHERE to_address = ?', [ADMIN.email])).toHaveLength(1);
  await em.rollback(); // …and undone with it
  expect(await auth.sql('SELECT id FROM mail_outbox WHERE to_address = ?', [ADMIN.email])).toEqual([]);
  expect(await auth.sql('SELECT id FROM password_reset_tokens')).toEqual([]);

  // the same request committed: sent (and the rolled-back one never was)
  const r = await auth.call(null, 'mutation($e: String!) { requestPasswordReset(email: $e) }', { e: ADMIN.email });
  expect(r.data).toEqual({ requestPasswordReset: true });
  await smtp.mailTo(ADMIN.email);
  expect(smtp.received.filter((m) => m.to.includes(ADMIN.email))).toHaveLength(1);
  // bookkept after the server took it
  await eventually(async () => (await auth.sql<{ status: string }>('SELECT status FROM mail_outbox WHERE to_address = ?', [ADMIN.email]))[0]?.status === 'sent');
  expect(await auth.sql('SELECT status FROM mail_outbox WHERE to_address = ?', [ADMIN.email])).toEqual([{ status: 'sent' }]);
});

describe('without MAIL_URL', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crm-mail-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function capture() {
    const lines: Record<string, unknown>[] = [];
    const logger = { info: (obj: Record<string, unknown>) => lines.push(obj), warn: (obj: Record<string, unknown>) => lines.push(obj) } as unknown as Logger;
    return { lines, logger };
  }
  const mail = {
    id: '6f1c2c52-4a7e-4d53-9a36-5b8e0f1d2c3b',
    to: 'ada@test.local',
    subject: 'Reset your CRM password',
    text: 'Open:\nhttp://localhost:4000/reset-password#token=abc_DEF-123\n',
  };

  test('mails are written as files under DATA_DIR/mail; development logs the link', async () => {
    const { lines, logger } = capture();
    const config = readConfig({}, { DATA_DIR: dir, NODE_ENV: 'development' });
    await createMailer(config, logger).send(mail);
    const files = await readdir(join(dir, 'mail'));
    expect(files).toHaveLength(1);
    const eml = await readFile(join(dir, 'mail', files[0]!), 'utf8');
    expect(eml).toMatch(/^To: ada@test\.local$/m);
    expect(eml).toMatch(/^Subject: Reset your CRM password$/m);
    expect(eml).toContain('#token=abc_DEF-123');
    expect(lines).toEqual([expect.objectContaining({ links: ['http://localhost:4000/reset-password#token=abc_DEF-123'] })]);
  });

  test('outside development the link is never logged', async () => {
    for (const NODE_ENV of ['test', 'production'] as const) {
      const { lines, logger } = capture();
      const config = readConfig(
        {},
        { DATA_DIR: dir, NODE_ENV, ...(NODE_ENV === 'production' ? { JWT_SECRET: 'Zq8vN3xL0pR7tY2wK5mB9cF4hJ6dS1gA', INTERNAL_SECRET: 'Hk2Lm9Pq4Rs7Tv1Wx3Yz6Ab8Cd0Ef5Gj' } : {}) },
      );
      await createMailer(config, logger).send(mail);
      expect(JSON.stringify(lines)).not.toContain('abc_DEF-123');
      expect(lines).toHaveLength(1);
    }
  });
});

test('the service logger redacts reset tokens, passwords and the mail URL by name', async () => {
  const { Writable } = await import('node:stream');
  const { createLogger } = await import('@crm/telemetry');
  const out: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      out.push(String(chunk));
      done();
    },
  });
  const logger = createLogger('auth', 'info', sink);
  logger.info({ variables: { token: 'tok-SECRET-1', newPassword: 'pw-SECRET-2', currentPassword: 'pw-SECRET-3' }, config: { MAIL_URL: 'smtp://u:pw-SECRET-4@h' } }, 'request');
  expect(out.join('')).not.toMatch(/SECRET/);
  expect(out.join('')).toContain('[redacted]');
});
