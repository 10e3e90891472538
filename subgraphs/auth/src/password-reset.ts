/**
 * Password changes and resets. A reset token is 32 random bytes (base64url), stored as its SHA-256,
 * single use, expiring after PASSWORD_RESET_TTL_SECONDS; it travels only in the mail (its link's
 * fragment), never in a log. requestPasswordReset answers true and does the same work whether or
 * not the email belongs to an active user: one token row (user_id NULL when not: it never works),
 * one mail row (status 'suppressed' when not: never sent) and one audit entry, in one transaction.
 * A changed or reset password ends every other session: the user's token version is bumped
 * (user.updated with tokenVersion: the gateway refuses older access tokens and closes their sockets)
 * and their refresh tokens are revoked, as logout and deactivation do.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { loadForWrite } from '@crm/events';
import { unauthenticated } from '@crm/errors';
import { type PlatformConfig } from '@crm/config';
import { PasswordResetToken, User } from './entities';
import { stageAudit } from './audit';
import { stageMail } from './mail';
import { findByEmail, normalizeEmail } from './users';

export const tokenDigest = (token: string) => createHash('sha256').update(token).digest('hex');

export function resetLink(config: PlatformConfig, token: string): string {
  return `${config.RESET_PAGE_URL}#token=${token}`;
}

function resetMailText(user: { name: string } | null, link: string, ttlSeconds: number): string {
  const minutes = Math.round(ttlSeconds / 60);
  return [
    `Hello${user ? ` ${user.name}` : ''},`,
    '',
    'Someone (hopefully you) asked to reset the password of your CRM account. To choose a new password, open:',
    '',
    link,
    '',
    `The link works once, within ${minutes} minutes. If you did not ask for it, ignore this mail: your password stays as it is.`,
  ].join('\n');
}

/** Stages the reset request (token, mail, audit) on `em`; the caller flushes. Same work for every email. */
export async function stageResetRequest(em: EntityManager, email: string, config: PlatformConfig): Promise<void> {
  const found = await findByEmail(em, email);
  const user = found && found.active ? found : null;
  const token = randomBytes(32).toString('base64url');
  em.create(PasswordResetToken, {
    id: randomUUID(),
    userId: user?.id ?? null,
    tokenHash: tokenDigest(token),
    expiresAt: new Date(Date.now() + config.PASSWORD_RESET_TTL_SECONDS * 1000),
  });
  const to = user?.email ?? normalizeEmail(email);
  stageMail(
    em,
    { to, subject: 'Reset your CRM password', text: resetMailText(user, resetLink(config, token), config.PASSWORD_RESET_TTL_SECONDS) },
    user ? 'pending' : 'suppressed',
  );
  stageAudit(em, {
    actorId: user?.id ?? null,
    action: 'user.password_reset_requested',
    entityType: 'User',
    entityId: user?.id ?? null,
    // As for failed logins: never the typed email of an unknown account, a short hash to correlate.
    details: user ? null : { emailSha256: createHash('sha256').update(normalizeEmail(email)).digest('hex').slice(0, 16), known: false },
  });
}

/**
 * Claims a reset token (a conditional UPDATE: of two uses at once only one wins) and returns its
 * user, locked for the write (loadForWrite), or throws UNAUTHENTICATED (unknown, used, expired, or
 * its user is no longer active). Runs inside the caller's transaction (RequestContext.write).
 */
export async function claimResetToken(em: EntityManager, token: string): Promise<User> {
  const invalid = () => unauthenticated('Invalid or expired password reset token');
  const rows = await em.execute<{ user_id: string | null }[]>(
    `UPDATE password_reset_tokens SET used_at = now()
     WHERE token_hash = ? AND used_at IS NULL AND expires_at > now() AND user_id IS NOT NULL
     RETURNING user_id`,
    [tokenDigest(token)],
  );
  const userId = rows[0]?.user_id;
  if (!userId) throw invalid();
  const user = await loadForWrite(em, User, { id: userId });
  if (!user?.active) throw invalid();
  // The user's other outstanding reset tokens die with this one.
  await em.execute('UPDATE password_reset_tokens SET used_at = now() WHERE user_id = ? AND used_at IS NULL', [userId]);
  return user;
}
