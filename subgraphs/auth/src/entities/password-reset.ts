import { EntitySchema } from '@mikro-orm/postgresql';

/** One password-reset token; only its SHA-256 is stored. `userId` null: the twin of a request for an unknown email. */
export class PasswordResetToken {
  id!: string;
  userId: string | null = null;
  tokenHash!: string;
  expiresAt!: Date;
  usedAt: Date | null = null;
  createdAt: Date = new Date();
}

export const PasswordResetTokenSchema = new EntitySchema<PasswordResetToken>({
  class: PasswordResetToken,
  tableName: 'password_reset_tokens',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', nullable: true, fieldName: 'user_id' },
    tokenHash: { type: 'text', fieldName: 'token_hash' },
    expiresAt: { type: 'datetime', fieldName: 'expires_at' },
    usedAt: { type: 'datetime', nullable: true, fieldName: 'used_at' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});

export type MailStatus = 'pending' | 'sent' | 'suppressed';

/** A mail to send, written in the transaction of what it announces (mail/outbox.ts). */
export class OutgoingMail {
  id!: string;
  toAddress!: string;
  subject!: string;
  /** Cleared once sent (a reset mail carries its token). */
  textBody: string | null = null;
  status: MailStatus = 'pending';
  attempts = 0;
  nextAttemptAt: Date = new Date();
  lastError: string | null = null;
  createdAt: Date = new Date();
  sentAt: Date | null = null;
}

export const OutgoingMailSchema = new EntitySchema<OutgoingMail>({
  class: OutgoingMail,
  tableName: 'mail_outbox',
  properties: {
    id: { type: 'uuid', primary: true },
    toAddress: { type: 'text', fieldName: 'to_address' },
    subject: { type: 'text' },
    textBody: { type: 'text', nullable: true, fieldName: 'text_body' },
    status: { type: 'text' },
    attempts: { type: 'integer' },
    nextAttemptAt: { type: 'datetime', fieldName: 'next_attempt_at' },
    lastError: { type: 'text', nullable: true, fieldName: 'last_error' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    sentAt: { type: 'datetime', nullable: true, fieldName: 'sent_at' },
  },
});
