/**
 * Outgoing mail through an outbox in auth's database. A mail is a row written by the same flush
 * (so the same transaction) as what it announces: a rollback sends nothing. The mail job claims due
 * rows (a short lease, FOR UPDATE SKIP LOCKED: replicas never send one mail at once), sends them
 * with nodemailer, and on failure (SMTP server down, refused) retries with exponential backoff up to
 * MAIL_RETRY_MAX_MS, without limit: a mail is not lost while the server is away. Delivery is at least
 * once (a crash between the send and its bookkeeping sends it again). A sent mail's body is cleared.
 *
 * MAIL_URL (smtp:// or smtps://) selects SMTP; without it mails are written as .eml files under
 * DATA_DIR/mail (the OS temp folder when DATA_DIR=memory), and in development the links they carry are
 * logged (never in test or production: a reset link is a credential).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTransport } from 'nodemailer';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Job, SubgraphRuntime } from '@crm/runtime';
import type { Logger } from '@crm/telemetry';
import type { PlatformConfig } from '@crm/config';
import { OutgoingMail, type MailStatus } from './entities';

export interface MailContent {
  to: string;
  subject: string;
  text: string;
}

/** Stages a mail on `em` (written by the caller's flush). `suppressed`: written, never sent. */
export function stageMail(em: EntityManager, content: MailContent, status: Extract<MailStatus, 'pending' | 'suppressed'> = 'pending'): OutgoingMail {
  const mail = new OutgoingMail();
  mail.id = randomUUID();
  mail.toAddress = content.to;
  mail.subject = content.subject;
  mail.textBody = content.text;
  mail.status = status;
  em.persist(mail);
  return mail;
}

export interface Mailer {
  /** Where mails go, for logs (never credentials). */
  describe(): string;
  send(mail: { id: string; to: string; subject: string; text: string }): Promise<void>;
}

const CONNECTION_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 30_000;

export function createMailer(config: PlatformConfig, logger: Logger): Mailer {
  if (config.MAIL_URL) {
    // URL settings (and query parameters) win; the timeouts are defaults (nodemailer's own are minutes).
    const transport = createTransport({
      url: config.MAIL_URL,
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      greetingTimeout: CONNECTION_TIMEOUT_MS,
      socketTimeout: SOCKET_TIMEOUT_MS,
    });
    const url = new URL(config.MAIL_URL);
    return {
      describe: () => `${url.protocol}//${url.hostname}:${url.port || (url.protocol === 'smtps:' ? 465 : 587)}`,
      async send(mail) {
        await transport.sendMail({ from: config.MAIL_FROM, to: mail.to, subject: mail.subject, text: mail.text, messageId: `<${mail.id}@crm>` });
      },
    };
  }
  const folder = config.DATA_DIR === 'memory' ? join(tmpdir(), 'crm-mail') : resolve(config.DATA_DIR, 'mail');
  const transport = createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    describe: () => `files under ${folder}`,
    async send(mail) {
      const info = await transport.sendMail({ from: config.MAIL_FROM, to: mail.to, subject: mail.subject, text: mail.text, messageId: `<${mail.id}@crm>` });
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const file = join(folder, `${new Date().toISOString().replace(/[:.]/g, '-')}-${mail.id}.eml`);
      await writeFile(file, info.message as Buffer, { mode: 0o600 });
      if (config.NODE_ENV === 'development') {
        // Development only: the links a mail carries (a reset link), to follow without a mail server.
        logger.info({ to: mail.to, subject: mail.subject, file, links: mail.text.match(/https?:\/\/\S+/g) ?? [] }, 'mail written (no MAIL_URL)');
      } else {
        logger.info({ file }, 'mail written (no MAIL_URL)');
      }
    },
  };
}

/** The wait before attempt n + 1 after n failures: 1 s, 2 s, 4 s, … up to MAIL_RETRY_MAX_MS. */
export const retryDelayMs = (attempts: number, maxMs: number) => Math.min(maxMs, 1000 * 2 ** Math.max(0, attempts - 1));

/** A claimed row is not claimed again for this long (a send in progress, or a crashed one). */
const LEASE_SECONDS = 120;
const BATCH = 20;

interface DueMail {
  id: string;
  to_address: string;
  subject: string;
  text_body: string | null;
  attempts: number;
}

/** Claims due mails, sends them, records the outcome; returns how many were sent. */
export async function sendDueMails(em: EntityManager, mailer: Mailer, config: PlatformConfig, logger: Logger): Promise<number> {
  const due = await em.execute<DueMail[]>(
    `UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => ?), attempts = attempts + 1
     WHERE id IN (SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= now()
                  ORDER BY next_attempt_at, created_at LIMIT ? FOR UPDATE SKIP LOCKED)
     RETURNING id, to_address, subject, text_body, attempts`,
    [LEASE_SECONDS, BATCH],
  );
  let sent = 0;
  for (const mail of due) {
    try {
      await mailer.send({ id: mail.id, to: mail.to_address, subject: mail.subject, text: mail.text_body ?? '' });
      await em.execute(`UPDATE mail_outbox SET status = 'sent', sent_at = now(), text_body = NULL, last_error = NULL WHERE id = ?`, [mail.id]);
      sent += 1;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const delay = retryDelayMs(mail.attempts, config.MAIL_RETRY_MAX_MS);
      await em.execute('UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => ?), last_error = ? WHERE id = ?', [delay / 1000, message.slice(0, 500), mail.id]);
      logger.warn({ mailId: mail.id, attempts: mail.attempts, retryInMs: delay, err: message, via: mailer.describe() }, 'mail not sent; will retry');
    }
  }
  return sent;
}

/** Sent and suppressed mails, and reset tokens, are kept this long after they stop mattering. */
const KEEP_DAYS = 7;

const mailers = new WeakMap<SubgraphRuntime, { mailer: Mailer; busy: boolean; lastCleanup: number }>();

export const mailJob: Job = {
  name: 'mail-outbox',
  intervalMs: (config: PlatformConfig) => config.MAIL_POLL_MS,
  async run(runtime: SubgraphRuntime) {
    let state = mailers.get(runtime);
    if (!state) {
      state = { mailer: createMailer(runtime.config, runtime.logger), busy: false, lastCleanup: 0 };
      mailers.set(runtime, state);
      runtime.logger.info({ via: state.mailer.describe() }, 'mail outbox: sending');
      if (runtime.config.production && !runtime.config.MAIL_URL) {
        runtime.logger.warn('MAIL_URL is not set: password-reset mails are only written as files under DATA_DIR/mail; set MAIL_URL (smtp[s]://…) to send them');
      }
    }
    if (state.busy) return; // the previous round is still sending
    state.busy = true;
    try {
      const em = runtime.fork();
      await sendDueMails(em, state.mailer, runtime.config, runtime.logger);
      if (Date.now() - state.lastCleanup > 3_600_000) {
        state.lastCleanup = Date.now();
        await em.execute(`DELETE FROM mail_outbox WHERE status <> 'pending' AND created_at < now() - make_interval(days => ?)`, [KEEP_DAYS]);
        await em.execute('DELETE FROM password_reset_tokens WHERE expires_at < now() - make_interval(days => ?)', [KEEP_DAYS]);
      }
    } finally {
      state.busy = false;
    }
  },
};
