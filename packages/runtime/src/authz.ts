/**
 * The one auth check every resolver uses. Identities come from the gateway's signed header.
 */
import type { Identity, Role } from './identity';
import { forbidden, unauthenticated } from '@crm/errors';

export function requireUser(identity: Identity | null): Identity {
  if (!identity) throw unauthenticated();
  return identity;
}

export function requireRole(identity: Identity | null, ...roles: Role[]): Identity {
  const user = requireUser(identity);
  if (!roles.includes(user.role)) throw forbidden(`Requires role ${roles.join(' or ')}`);
  return user;
}

/** ADMIN and MANAGER see every record; SALES see their own; COMPLIANCE reads everything. */
export const seesAll = (identity: Identity) => identity.role !== 'SALES';
/** COMPLIANCE reads everything and changes nothing. */
export function requireWriter(identity: Identity | null): Identity {
  const user = requireUser(identity);
  if (user.role === 'COMPLIANCE') throw forbidden('COMPLIANCE users have read-only access');
  return user;
}
