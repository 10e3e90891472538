import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';

/** One password-reset token; only its SHA-256 is stored. `userId` null: the twin of a request for an unknown email. */
export const PasswordResetToken = defineRow({
  name: 'PasswordResetToken',
  tableName: 'password_reset_tokens',
  properties: {
    id: p.uuid().primary(),
    userId: p.uuid().nullable().fieldName('user_id'),
    tokenHash: p.text().fieldName('token_hash'),
    expiresAt: p.datetime().fieldName('expires_at'),
    usedAt: p.datetime().nullable().fieldName('used_at'),
    createdAt: createdAtColumn(),
  },
});
export type PasswordResetToken = InferEntity<typeof PasswordResetToken>;

export type MailStatus = 'pending' | 'sent' | 'suppressed';

/** A mail to send, written in the transaction of what it announces (mail/outbox.ts). */
export const OutgoingMail = defineRow({
  name: 'OutgoingMail',
  tableName: 'mail_outbox',
  properties: {
    id: p.uuid().primary(),
    toAddress: p.text().fieldName('to_address'),
    subject: p.text(),
    /** Cleared once sent (a reset mail carries its token). */
    textBody: p.text().nullable().fieldName('text_body'),
    status: p
      .text()
      .$type<MailStatus>()
      .onCreate(() => 'pending'),
    attempts: p
      .integer()
      .default(0)
      .onCreate(() => 0),
    nextAttemptAt: p
      .datetime()
      .fieldName('next_attempt_at')
      .defaultRaw('now()')
      .onCreate(() => new Date()),
    lastError: p.text().nullable().fieldName('last_error'),
    createdAt: createdAtColumn(),
    sentAt: p.datetime().nullable().fieldName('sent_at'),
  },
});
export type OutgoingMail = InferEntity<typeof OutgoingMail>;
