/**
 * Connection auth, on graphql-ws's `connection_init`: the access token comes from the payload
 * `{ authorization: "Bearer …" }` or from the upgrade request's Authorization header (browsers cannot
 * set headers on a WebSocket; other clients may). Verified like HTTP requests (../../auth.ts).
 *
 *   4401 Unauthorized — no token, a malformed header, or a token that is invalid or expired
 *                        (the client must (re)authenticate: log in or refresh, then reconnect);
 *                        also when the token expires on an open connection ('Token expired').
 *   4403 Forbidden    — a valid token, but the connection may not proceed: the payload and the
 *                        header carry tokens of different users, or the token is revoked (the
 *                        user was deleted, deactivated, changed role or signed out) — at
 *                        connection_init, or on an open connection as soon as the gateway learns it.
 *   4429 Too many     — the subscriber is too slow, or the user or address already holds
 *                        SUBSCRIPTION_CONNECTIONS_PER_USER / _PER_IP connections on this replica.
 * graphql-ws clients treat both as fatal (no automatic retry).
 */
import type { IncomingMessage } from 'node:http';
import { GraphQLError } from 'graphql';
import type { Identity } from '@crm/runtime';
import type { PlatformConfig } from '@crm/config';
import { bearerToken, verifyAccessToken, type VerifiedToken } from '../../auth';

export const CLOSE = {
  unauthorized: 4401,
  forbidden: 4403,
  tooSlow: 4429,
  /** Over SUBSCRIPTION_CONNECTIONS_PER_USER or SUBSCRIPTION_CONNECTIONS_PER_IP. */
  tooMany: 4429,
  goingAway: 1001,
  /**
   * The gateway is stopping (a deploy, a restart): reconnect. graphql-ws 6 clients retry it (like 1001,
   * 1006, 1013, 1014) and subscribe again; the gateway sends no `complete` first, which would end them.
   */
  restart: 1012,
} as const;

export type ConnectionAuth = { ok: true; identity: Identity; expiresAt: number; tokenVersion: number } | { ok: false; code: number; reason: string };

const refuse = (code: number, reason: string): ConnectionAuth => ({ ok: false, code, reason });

export function authenticateConnection(params: Readonly<Record<string, unknown>> | undefined, request: IncomingMessage | undefined, config: PlatformConfig): ConnectionAuth {
  const fromPayload = params?.authorization ?? params?.Authorization;
  const fromHeader = request?.headers.authorization;
  const candidates = [fromPayload, fromHeader].filter((v) => v !== undefined && v !== null && v !== '');
  if (candidates.length === 0) return refuse(CLOSE.unauthorized, 'Missing access token');
  const verified: VerifiedToken[] = [];
  for (const value of candidates) {
    const token = typeof value === 'string' ? bearerToken(value) : undefined;
    if (!token) return refuse(CLOSE.unauthorized, 'Authorization must be "Bearer <access token>"');
    try {
      verified.push(verifyAccessToken(token, config));
    } catch (err) {
      return refuse(CLOSE.unauthorized, err instanceof GraphQLError ? err.message : 'Invalid access token');
    }
  }
  const [first, second] = verified;
  if (second && second.identity.userId !== first!.identity.userId) return refuse(CLOSE.forbidden, 'Conflicting credentials');
  const expiresAt = Math.min(...verified.map((v) => v.expiresAt));
  const tokenVersion = Math.min(...verified.map((v) => v.tokenVersion));
  return { ok: true, identity: first!.identity, expiresAt, tokenVersion };
}
