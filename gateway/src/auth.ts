/**
 * Access-token verification at the gateway: HS256 only (so `alg: none` and algorithm swaps
 * fail), issuer and audience checked, expiry enforced.
 */
import jwt from 'jsonwebtoken';
import { GraphQLError } from 'graphql';
import { ROLES, type Identity, type PlatformConfig } from '@crm/kit';

export interface VerifiedToken {
  identity: Identity;
  expiresAt: number;
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
    const decoded = jwt.verify(token, config.JWT_SECRET, {
      algorithms: ['HS256'],
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
  if (!claims.sub || !ROLES.includes(role) || typeof claims.email !== 'string' || !claims.exp) {
    throw unauthenticated('Invalid access token');
  }
  return { identity: { userId: claims.sub, role, email: claims.email }, expiresAt: claims.exp * 1000 };
}
