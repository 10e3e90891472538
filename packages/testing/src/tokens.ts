/**
 * Access tokens as auth signs them (its key: the configured AUTH_SIGNING_KEY, or this process's
 * development key), for tests that need an expired, short-lived or otherwise crafted one.
 */
import jwt from 'jsonwebtoken';
import type { PlatformConfig } from '@crm/config';
import { authSigningKey, KEY_ALGORITHM } from '@crm/runtime';

export function signTestAccessToken(config: PlatformConfig, claims: Record<string, unknown>, options: jwt.SignOptions = {}): string {
  const signer = authSigningKey(config);
  return jwt.sign(claims, signer.key, { algorithm: KEY_ALGORITHM, keyid: signer.kid, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, ...options });
}
