/**
 * Access-token verification at the gateway: ES256 only, with auth's public keys (AUTH_PUBLIC_KEYS,
 * picked by the token's `kid`; the gateway holds no key that can sign one), so `alg: none`, HS256
 * with a public key as the secret and tokens of any other signer fail; issuer and audience
 * checked, expiry enforced.
 */
import jwt from 'jsonwebtoken';
import { GraphQLError } from 'graphql';
import { authPublicKeys, KEY_ALGORITHM, ROLES, type Identity, type PlatformConfig } from '@crm/kit';

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

export function verifyAccessToken(token: string, config: PlatformConfig): VerifiedToken {
  let claims: jwt.JwtPayload;
  try {
    const header = jwt.decode(token, { complete: true })?.header;
    const key = header?.kid ? authPublicKeys(config).get(header.kid) : undefined;
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
