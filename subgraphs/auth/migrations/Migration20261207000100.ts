import { Migration } from '@mikro-orm/migrations';

/**
 * Passwords and mail (issue 29):
 * - password_reset_tokens: only the SHA-256 of each token; single use (`used_at`), expiring. A request
 *   for an unknown or inactive email writes a row too (user_id NULL: it never works), so both answers
 *   take the same work.
 * - mail_outbox: mails written in the transaction of what they announce (a rollback sends nothing),
 *   sent by auth's mail job and retried with backoff until the server takes them. `status`
 *   'suppressed' (the unknown-email twin of a reset mail) is never sent. The body is cleared once sent.
 */
export class Migration20261207000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE password_reset_tokens (
      id uuid PRIMARY KEY,
      user_id uuid REFERENCES users(id),
      token_hash text NOT NULL UNIQUE,
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX password_reset_tokens_user ON password_reset_tokens (user_id) WHERE used_at IS NULL');
    this.addSql('CREATE INDEX password_reset_tokens_expires ON password_reset_tokens (expires_at)');
    this.addSql(`CREATE TABLE mail_outbox (
      id uuid PRIMARY KEY,
      to_address text NOT NULL,
      subject text NOT NULL,
      text_body text,
      status text NOT NULL CHECK (status IN ('pending', 'sent', 'suppressed')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      last_error text,
      created_at timestamptz NOT NULL DEFAULT now(),
      sent_at timestamptz
    )`);
    this.addSql(`CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'pending'`);
  }
}
