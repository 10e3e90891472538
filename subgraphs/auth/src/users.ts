/** User lifecycle shared by resolvers and start-up: creation (with its event) and lookups. */
import { randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException, type EntityManager } from '@mikro-orm/postgresql';
import { conflict } from '@crm/errors';
import { stageEvent } from '@crm/events';
import { type Role } from '@crm/runtime';
import { User } from './entities';
import { hashPassword } from './passwords';
import { stageAudit } from './audit';

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

export const findByEmail = (em: EntityManager, email: string) => em.findOne(User, { email: normalizeEmail(email) });

export function userEventData(user: User) {
  return { userId: user.id, email: user.email, name: user.name, role: user.role, active: user.active, approved: user.approved, tokenVersion: user.tokenVersion };
}

/** Creates a user, its audit entry and its user.created event in one flush. */
export async function createUser(
  em: EntityManager,
  input: { email: string; password: string; name: string; role: Role },
  actorId: string | null,
  status: { approved: boolean; pendingApproval?: boolean } = { approved: false },
): Promise<User> {
  if (await findByEmail(em, input.email)) throw conflict('A user with this email already exists');
  const pendingApproval = status.pendingApproval ?? false;
  const user = em.create(User, {
    id: randomUUID(),
    email: normalizeEmail(input.email),
    name: input.name.trim(),
    role: input.role,
    approved: status.approved,
    pendingApproval,
    active: !pendingApproval,
    passwordHash: await hashPassword(input.password),
  });
  stageAudit(em, {
    actorId: actorId ?? user.id,
    action: 'user.created',
    entityType: 'User',
    entityId: user.id,
    details: { role: user.role, approved: user.approved, pendingApproval: user.pendingApproval },
  });
  stageEvent(em, 'auth', 'user.created', user.id, userEventData(user), { actorId: actorId ?? user.id });
  try {
    await em.flush();
  } catch (err) {
    // The unique index on lower(email) settles concurrent registrations.
    if (err instanceof UniqueConstraintViolationException) throw conflict('A user with this email already exists');
    throw err;
  }
  return user;
}
