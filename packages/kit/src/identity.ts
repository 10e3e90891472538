/**
 * The caller's identity as the gateway forwards it to subgraphs: a compact JSON header and an
 * HMAC-SHA256 over it with INTERNAL_SECRET. Subgraphs refuse requests without a valid signature,
 * so calling a subgraph directly cannot impersonate anyone.
 *
 * The signed payload binds the identity to one request: the target subgraph (its name), the HTTP
 * method and a SHA-256 of the body, with `iat`. A subgraph accepts it only for its own name, the
 * same method and body, and within MAX_AGE_SECONDS (a missing, malformed or future `iat` is
 * refused). A captured header is therefore worth nothing for another subgraph, another operation or
 * other variables, and only for MAX_AGE_SECONDS for the identical request.
 *
 * One signing function for everything that calls subgraphs: the gateway's subgraph client
 * (gateway/src/datasource.ts) and the test helpers.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const ROLES = ['ADMIN', 'MANAGER', 'SALES', 'COMPLIANCE'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  userId: string;
  role: Role;
  email: string;
}

export const IDENTITY_HEADER = 'x-crm-identity';
export const SIGNATURE_HEADER = 'x-crm-signature';
export const MAX_AGE_SECONDS = 30;
/** Clock skew tolerated between gateway and subgraph hosts for `iat` in the future. */
const MAX_SKEW_SECONDS = 2;

/** The request a signature is for. */
export interface SignedRequest {
  /** The target subgraph's name (as in supergraph.yaml). */
  subgraph: string;
  method: string;
  /** The exact request body sent ('' for none). */
  body: string;
}

interface SignedPayload {
  u: Identity | null;
  iat: number;
  sg: string;
  m: string;
  bh: string;
}

const bodyHash = (body: string) => createHash('sha256').update(body).digest('base64url');

export function signIdentity(identity: Identity | null, secret: string, request: SignedRequest, now = Date.now()): Record<string, string> {
  const payload: SignedPayload = { u: identity, iat: Math.floor(now / 1000), sg: request.subgraph, m: request.method.toUpperCase(), bh: bodyHash(request.body) };
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return { [IDENTITY_HEADER]: encoded, [SIGNATURE_HEADER]: mac(encoded, secret) };
}

export type VerifiedIdentity = { ok: true; identity: Identity | null } | { ok: false; reason: string };

export function verifyIdentity(
  header: string | undefined,
  signature: string | undefined,
  secret: string,
  request: SignedRequest,
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
  if (typeof payload !== 'object' || payload === null || !Number.isInteger(payload.iat)) return { ok: false, reason: 'malformed identity' };
  const age = now / 1000 - payload.iat;
  if (age < -MAX_SKEW_SECONDS) return { ok: false, reason: 'gateway signature from the future' };
  if (age > MAX_AGE_SECONDS) return { ok: false, reason: 'stale gateway signature' };
  if (payload.sg !== request.subgraph) return { ok: false, reason: 'gateway signature for another subgraph' };
  if (payload.m !== request.method.toUpperCase() || payload.bh !== bodyHash(request.body)) return { ok: false, reason: 'gateway signature for another request' };
  return { ok: true, identity: payload.u };
}

function mac(data: string, secret: string): string {
  return createHmac('sha256', secret).update(data).digest('base64url');
}
