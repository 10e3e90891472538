/**
 * Access-token verification at the gateway: ES256 only, with auth's public keys (AUTH_PUBLIC_KEYS,
 * picked by the token's `kid`; the gateway holds no key that can sign one), so `alg: none`, HS256
 * with a public key as the secret and tokens of any other signer fail; issuer and audience
 * checked, expiry enforced.
 */
import jwt from 'jsonwebtoken';
import { GraphQLError } from 'graphql';
import { authPublicKeys, KEY_ALGORITHM, ROLES, type Identity, type PublicKeys } from '@crm/runtime';
import { type PlatformConfig } from '@crm/config';

export interface VerifiedToken {
  identity: Identity;
  expiresAt: number;
  /** The `tv` claim: tokens below the user's current version are revoked (../revocations.ts). */
  tokenVersion: number;
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1];
}

export function unauthenticated(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

/**
 * Verified tokens, per set of auth's public keys: an ES256 verify costs far more than the HS256 one
 * it replaced, and a client sends one token with many requests. A hit is still checked for expiry;
 * the token version (revocation) is checked by the caller on every request, as before. Bounded:
 * the oldest entry goes first.
 */
const VERIFIED_CACHE_SIZE = 10_000;
const verifiedCache = new WeakMap<object, Map<string, VerifiedToken>>();

export function verifyAccessToken(token: string, config: PlatformConfig): VerifiedToken {
  const keys = authPublicKeys(config);
  let cache = verifiedCache.get(keys);
  if (!cache) verifiedCache.set(keys, (cache = new Map()));
  const cacheKey = `${config.JWT_ISSUER}\0${config.JWT_AUDIENCE}\0${token}`;
  const hit = cache.get(cacheKey);
  if (hit) {
    if (Math.floor(Date.now() / 1000) < hit.expiresAt / 1000) return { ...hit, identity: { ...hit.identity } };
    cache.delete(cacheKey);
    throw unauthenticated('Access token expired');
  }
  const verified = verifyUncached(token, config, keys);
  if (cache.size >= VERIFIED_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(cacheKey, verified);
  return verified;
}

function verifyUncached(token: string, config: PlatformConfig, keys: PublicKeys): VerifiedToken {
  let claims: jwt.JwtPayload;
  try {
    const header = jwt.decode(token, { complete: true })?.header;
    const key = header?.kid ? keys.get(header.kid) : undefined;
    if (!key) throw new Error('unknown signing key');
    const decoded = jwt.verify(token, key, {
      algorithms: [KEY_ALGORITHM],
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
    });
    if (typeof decoded === 'string') throw new Error('unexpected payload');
    claims = decoded;
  } catch (err) {
    const expired = err instanceof jwt.TokenExpiredError;
    throw unauthenticated(expired ? 'Access token expired' : 'Invalid access token');
  }
  const role = claims.role as Identity['role'];
  const tv = claims.tv ?? 0;
  if (!claims.sub || !ROLES.includes(role) || typeof claims.email !== 'string' || !claims.exp || !Number.isInteger(tv) || tv < 0) {
    throw unauthenticated('Invalid access token');
  }
  return { identity: { userId: claims.sub, role, email: claims.email }, expiresAt: claims.exp * 1000, tokenVersion: tv };
}
