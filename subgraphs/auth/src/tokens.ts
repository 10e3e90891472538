/**
 * Access tokens: short-lived ES256 JWTs signed with auth's own private key (AUTH_SIGNING_KEY, `kid`
 * in the header), which the gateway verifies with auth's public keys. Refresh tokens: random, single use,
 * stored hashed; using one rotates it, and reusing a used one revokes its whole family.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { EntityManager } from '@mikro-orm/postgresql';
import { authSigningKey, KEY_ALGORITHM } from '@crm/runtime';
import { unauthenticated } from '@crm/errors';
import { type PlatformConfig } from '@crm/config';
import { RefreshToken, User } from './entities';

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  expiresAt: Date;
  user: User;
}

export function signAccessToken(user: User, config: PlatformConfig): { token: string; expiresAt: Date } {
  const expiresAt = new Date(Date.now() + config.ACCESS_TOKEN_TTL_SECONDS * 1000);
  const signer = authSigningKey(config);
  const token = jwt.sign({ role: user.role, email: user.email, tv: user.tokenVersion }, signer.key, {
    algorithm: KEY_ALGORITHM,
    keyid: signer.kid,
    subject: user.id,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    expiresIn: config.ACCESS_TOKEN_TTL_SECONDS,
    jwtid: randomUUID(),
  });
  return { token, expiresAt };
}

const digest = (token: string) => createHash('sha256').update(token).digest('hex');

/** Stages a new refresh token row on `em` (flushed by the caller) and returns its secret. */
export function stageRefreshToken(em: EntityManager, user: User, config: PlatformConfig, familyId: string = randomUUID()): string {
  const secret = randomBytes(32).toString('base64url');
  em.create(RefreshToken, {
    id: randomUUID(),
    userId: user.id,
    familyId,
    tokenHash: digest(secret),
    expiresAt: new Date(Date.now() + config.REFRESH_TOKEN_TTL_SECONDS * 1000),
  });
  return secret;
}

export function issueTokens(em: EntityManager, user: User, config: PlatformConfig, familyId?: string): IssuedTokens {
  const refreshToken = stageRefreshToken(em, user, config, familyId);
  const access = signAccessToken(user, config);
  return { accessToken: access.token, refreshToken, expiresAt: access.expiresAt, user };
}

/**
 * Rotates a refresh token. The row is claimed with a conditional UPDATE so two concurrent
 * refreshes with one token cannot both succeed; a reused token revokes its family.
 */
export async function rotateRefreshToken(
  em: EntityManager,
  presented: string,
  config: PlatformConfig,
  options: { onReuse?: (userId: string) => Promise<void> } = {},
): Promise<IssuedTokens> {
  const invalid = () => unauthenticated('Invalid or expired refresh token');
  const row = await em.findOne(RefreshToken, { tokenHash: digest(presented) });
  if (!row) throw invalid();
  const claimed = await em.nativeUpdate(RefreshToken, { id: row.id, usedAt: null, revokedAt: null, expiresAt: { $gt: new Date() } }, { usedAt: new Date() });
  if (claimed !== 1) {
    if (row.usedAt) {
      await revokeFamily(em, row.familyId);
      await options.onReuse?.(row.userId);
    }
    throw invalid();
  }
  const user = await em.findOne(User, { id: row.userId });
  if (!user?.active) throw invalid();
  const tokens = issueTokens(em, user, config, row.familyId);
  await em.flush();
  return tokens;
}

export async function revokeFamily(em: EntityManager, familyId: string): Promise<void> {
  await em.nativeUpdate(RefreshToken, { familyId, revokedAt: null }, { revokedAt: new Date() });
}

export async function revokeAllFor(em: EntityManager, userId: string): Promise<number> {
  return em.nativeUpdate(RefreshToken, { userId, revokedAt: null }, { revokedAt: new Date() });
}
