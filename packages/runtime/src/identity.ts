/**
 * The caller's identity as the gateway forwards it to subgraphs: an ES256 JWS signed with the
 * gateway's own private key (GATEWAY_SIGNING_KEY, held by the gateway alone; kit keys.ts), sent as
 * two headers: x-crm-identity (the JWS header and payload) and x-crm-signature (its signature).
 * Subgraphs verify it with the gateway's public keys (GATEWAY_PUBLIC_KEYS) and refuse requests
 * without a valid signature, so neither a caller of a subgraph nor a subgraph (which holds no
 * gateway key) can impersonate a user.
 *
 * The signed payload binds the identity to one request: the target subgraph (its name), the HTTP
 * method and a SHA-256 of the body, with `iat` and an `exp` MAX_AGE_SECONDS later. A subgraph
 * accepts it only for its own name, the same method and body, and within MAX_AGE_SECONDS (a
 * missing, malformed or future `iat` is refused). A captured header is therefore worth nothing for
 * another subgraph, another operation or other variables, and only for MAX_AGE_SECONDS for the
 * identical request.
 *
 * A subgraph's read-through call to a peer (./peers.ts) is signed the same way with that subgraph's
 * own key (SERVICE_SIGNING_KEY, kid `<service>:…`) and carries no user at all: it is a service
 * principal, which a peer accepts only for an `_entities` read (subgraph.ts).
 *
 * One signing function for everything that calls subgraphs: the gateway's subgraph client
 * (gateway/src/datasource.ts), the peers and the test helpers.
 *
 * The JWS (compact, ES256, `kid` in the header: what jsonwebtoken wrote before) is made and checked
 * with node:crypto directly: one signature per subgraph fetch and one verification per subgraph
 * request are the hot path (16 per query in bench:gateways), and jsonwebtoken's stream-based jws
 * layer cost as much again as the ECDSA itself (sign 0.055 → 0.035 ms, verify 0.10 → 0.085 ms on
 * one core). Only `ES256` with a known `kid` is accepted; the checks below are the same as before.
 */
import { createHash, sign as signBytes, verify as verifyBytes } from 'node:crypto';
import { KEY_ALGORITHM, serviceOfKid, type PublicKeys, type SigningKey } from './keys';

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
  /** The user (gateway-signed calls only). */
  u?: Identity | null;
  /** The calling service (peer calls only): must be the signing key's service. */
  svc?: string;
  iat: number;
  exp: number;
  sg: string;
  m: string;
  bh: string;
}

/** Who verifies: the gateway's public keys, and the peers' (service principals). */
export interface IdentityKeys {
  gateway: PublicKeys;
  services?: PublicKeys;
}

const bodyHash = (body: string) => createHash('sha256').update(body).digest('base64url');

const headers = new Map<string, string>();
/** The compact JWS header of a key (base64url of {"alg":"ES256","typ":"JWT","kid":…}), made once per key. */
function jwsHeader(kid: string): string {
  let header = headers.get(kid);
  if (!header) headers.set(kid, (header = Buffer.from(JSON.stringify({ alg: KEY_ALGORITHM, typ: 'JWT', kid })).toString('base64url')));
  return header;
}

function sign(payload: Pick<SignedPayload, 'u' | 'svc'>, signer: SigningKey, request: SignedRequest, now: number): Record<string, string> {
  const iat = Math.floor(now / 1000);
  const claims: SignedPayload = { ...payload, iat, exp: iat + MAX_AGE_SECONDS, sg: request.subgraph, m: request.method.toUpperCase(), bh: bodyHash(request.body) };
  const signed = `${jwsHeader(signer.kid)}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = signBytes('sha256', Buffer.from(signed), { key: signer.key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return { [IDENTITY_HEADER]: signed, [SIGNATURE_HEADER]: signature };
}

/** The parsed JSON object of a base64url JWS part, or undefined. */
function jsonPart(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The gateway's signature: `identity` (null: anonymous) for this one request. */
export function signIdentity(identity: Identity | null, signer: SigningKey, request: SignedRequest, now = Date.now()): Record<string, string> {
  return sign({ u: identity }, signer, request, now);
}

/** A subgraph's own signature for a peer call: a service principal (the key's service), no user. */
export function signServiceCall(signer: SigningKey, request: SignedRequest, now = Date.now()): Record<string, string> {
  return sign({ svc: serviceOfKid(signer.kid) }, signer, request, now);
}

export type VerifiedIdentity = { ok: true; identity: Identity | null; service?: undefined } | { ok: true; identity: null; service: string } | { ok: false; reason: string };

export function verifyIdentity(header: string | undefined, signature: string | undefined, keys: IdentityKeys, request: SignedRequest, now = Date.now()): VerifiedIdentity {
  if (!header || !signature) return { ok: false, reason: 'missing gateway signature' };
  const dot = header.indexOf('.');
  const jwsHead = dot > 0 && !header.includes('.', dot + 1) ? jsonPart(header.slice(0, dot)) : undefined;
  const kid = jwsHead?.kid;
  if (typeof kid !== 'string' || !kid) return { ok: false, reason: 'malformed identity' };
  const gatewayKey = keys.gateway.get(kid);
  const serviceKey = gatewayKey ? undefined : keys.services?.get(kid);
  const key = gatewayKey ?? serviceKey;
  if (!key || jwsHead.alg !== KEY_ALGORITHM) return { ok: false, reason: 'bad gateway signature' };
  let valid = false;
  try {
    valid = verifyBytes('sha256', Buffer.from(header), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'bad gateway signature' };
  const payload = jsonPart(header.slice(dot + 1)) as SignedPayload | undefined;
  if (!payload) return { ok: false, reason: 'malformed identity' };
  // `exp` as JWT readers check it (the age from `iat` below is the binding limit)
  if (payload.exp !== undefined && (typeof payload.exp !== 'number' || now / 1000 >= payload.exp + MAX_SKEW_SECONDS)) return { ok: false, reason: 'stale gateway signature' };
  if (!Number.isInteger(payload.iat)) return { ok: false, reason: 'malformed identity' };
  const age = now / 1000 - payload.iat;
  if (age < -MAX_SKEW_SECONDS) return { ok: false, reason: 'gateway signature from the future' };
  if (age > MAX_AGE_SECONDS) return { ok: false, reason: 'stale gateway signature' };
  if (payload.sg !== request.subgraph) return { ok: false, reason: 'gateway signature for another subgraph' };
  if (payload.m !== request.method.toUpperCase() || payload.bh !== bodyHash(request.body)) return { ok: false, reason: 'gateway signature for another request' };
  if (serviceKey) {
    // a peer's key speaks only for its own service, and never for a user
    if (payload.u !== undefined || payload.svc !== serviceOfKid(kid)) return { ok: false, reason: 'bad service signature' };
    return { ok: true, identity: null, service: payload.svc };
  }
  if (payload.svc !== undefined) return { ok: false, reason: 'malformed identity' };
  return { ok: true, identity: payload.u ?? null };
}
