/**
 * Revocation at the source (docs/revocation.md): the gateway asks auth, through a signed internal
 * call (POST /internal/token-states), for the current token state of the users whose access
 * tokens it is checking, and caches each answer for at most TOKEN_STATE_CACHE_MS. The answer is
 * read from the users table, which every revoking mutation (role change, deactivation/deleteUser,
 * logout, password change) has committed before it answers: no event has to travel first.
 */
import { z } from 'zod';
import { badInput } from '@crm/errors';
import { type SubgraphRuntime } from '@crm/runtime';
import { User } from './entities';

export interface TokenState {
  /** Access tokens with a lower `tv` claim are revoked. */
  minVersion: number;
  /** false: the user is deleted (deactivated), pending approval or unknown; every token is refused. */
  active: boolean;
}

const input = z.object({ users: z.array(z.string().uuid()).min(1).max(500) });

export async function tokenStates(body: unknown, runtime: SubgraphRuntime): Promise<{ states: Record<string, TokenState> }> {
  const parsed = input.safeParse(body);
  if (!parsed.success) throw badInput(`users must be 1 to 500 user ids: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const ids = [...new Set(parsed.data.users)];
  const rows = await runtime.fork().find(User, { id: { $in: ids } }, { fields: ['id', 'tokenVersion', 'active'] });
  const states: Record<string, TokenState> = {};
  for (const id of ids) states[id] = { minVersion: 0, active: false };
  for (const u of rows) states[u.id] = { minVersion: u.tokenVersion, active: u.active };
  return { states };
}
