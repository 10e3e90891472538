/**
 * The caller's identity as the gateway forwards it to subgraphs: a compact JSON header and an
 * HMAC-SHA256 over it with INTERNAL_SECRET. Subgraphs refuse requests without a valid signature,
 * so calling a subgraph directly cannot impersonate anyone. Replays are bounded by `iat`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const ROLES = ['ADMIN', 'MANAGER', 'SALES', 'COMPLIANCE'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  userId: string;
  role: Role;
  email: string;
}

export const IDENTITY_HEADER = 'x-crm-identity';
export const SIGNATURE_HEADER = 'x-crm-signature';
const MAX_AGE_SECONDS = 300;

interface SignedPayload {
  u: Identity | null;
  iat: number;
}

export function signIdentity(identity: Identity | null, secret: string, now = Date.now()): Record<string, string> {
  const payload: SignedPayload = { u: identity, iat: Math.floor(now / 1000) };
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return { [IDENTITY_HEADER]: encoded, [SIGNATURE_HEADER]: mac(encoded, secret) };
}

export type VerifiedIdentity = { ok: true; identity: Identity | null } | { ok: false; reason: string };

export function verifyIdentity(
  header: string | undefined,
  signature: string | undefined,
  secret: string,
  now = Date.now(),
): VerifiedIdentity {
  if (!header || !signature) return { ok: false, reason: 'missing gateway signature' };
  const expected = Buffer.from(mac(header, secret));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'bad gateway signature' };
  let payload: SignedPayload;
  try {
    payload = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as SignedPayload;
  } catch {
    return { ok: false, reason: 'malformed identity' };
  }
  if (Math.abs(now / 1000 - payload.iat) > MAX_AGE_SECONDS) return { ok: false, reason: 'stale gateway signature' };
  return { ok: true, identity: payload.u };
}

function mac(data: string, secret: string): string {
  return createHmac('sha256', secret).update(data).digest('base64url');
}
