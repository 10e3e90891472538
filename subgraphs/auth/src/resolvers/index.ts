import { createHash, randomUUID } from 'node:crypto';
import type DataLoader from 'dataloader';
import { z } from 'zod';
import type { EntityManager } from '@mikro-orm/postgresql';
import { ROLES, parseInput, requireRole, requireUser, scalarResolvers, type Identity, type RequestContext, type WriteContext } from '@crm/runtime';
import { badInput, conflict, forbidden, notFound, pendingApproval, unauthenticated } from '@crm/errors';
import { loadAllForWrite, loadForWrite } from '@crm/events';
import { byIdLoader, paginate } from '@crm/database';
import { AuditEntry, User } from '../entities';
import { stageAudit } from '../audit';
import { issueTokens, revokeAllFor, rotateRefreshToken } from '../tokens';
import { hashPassword, timingDummyHash, verifyPassword } from '../passwords';
import { claimResetToken, stageResetRequest } from '../password-reset';
import { stageMail } from '../mail';
import { createUser, findByEmail, userEventData } from '../users';
import type { Resolvers } from '../generated/resolvers-types';

export interface AuthLoaders {
  user: DataLoader<string, User | null>;
}

export function createLoaders(em: EntityManager): AuthLoaders {
  return {
    // Plain rows (kit lean.ts), not managed entities: every read of a user (User references of a
    // customer list, me, user, audit actors) is read-only; writes load their user under a lock.
    user: byIdLoader(em, User, {}, { lean: true }),
  };
}

type Ctx = RequestContext<AuthLoaders>;

const uuid = z.string().uuid();
const registerInput = z.object({
  email: z.string().trim().email('must be a valid email address').max(254),
  password: z.string().min(10, 'must be at least 10 characters').max(200),
  name: z.string().trim().min(1, 'must not be empty').max(200),
});
const newPassword = registerInput.shape.password;
const resetRequestInput = z.object({ email: registerInput.shape.email });
const createUserInput = registerInput.extend({ role: z.enum(ROLES) });
const updateUserInput = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(200).nullish(),
  role: z.enum(ROLES).nullish(),
});

const isUuid = (id: string) => uuid.safeParse(id).success;

/**
 * Keeps an active ADMIN: before `target`, an ADMIN, loses the role or is deleted, every active
 * ADMIN row is locked (in id order) and counted, so two ADMINs stepping down or deleting each other
 * at the same moment take turns, and the second sees the first's change. Else nobody could manage
 * users any more (only a restart with another ADMIN_EMAIL would make a new ADMIN).
 */
async function keepAnAdmin(em: EntityManager, target: User): Promise<void> {
  if (target.role !== 'ADMIN') return;
  const admins = await loadAllForWrite(em, User, { role: 'ADMIN', active: true }, { id: 'asc' });
  if (!admins.some((a) => a.id !== target.id)) throw conflict('The last ADMIN cannot lose the role or be deleted: make another user ADMIN first');
}

export const resolvers: Resolvers = {
  ...scalarResolvers,
  Query: {
    me: async (_: unknown, __: unknown, ctx: Ctx) => {
      if (!ctx.identity) return null;
      const user = await ctx.loaders.user.load(ctx.identity.userId);
      return user?.active ? user : null;
    },
    user: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(id) ? ctx.loaders.user.load(id) : null;
    },
    users: async (_: unknown, args: { role?: string | null; first?: number | null; after?: string | null }, ctx: Ctx) => {
      requireRole(ctx.identity, 'ADMIN', 'MANAGER');
      return paginate(ctx.em, User, args.role ? { role: args.role as User['role'] } : {}, args);
    },
    auditLog: async (_: unknown, args: { actorId?: string | null; entityType?: string | null; first?: number | null; after?: string | null }, ctx: Ctx) => {
      requireRole(ctx.identity, 'ADMIN', 'COMPLIANCE');
      const where: Record<string, unknown> = {};
      if (args.actorId) {
        if (!isUuid(args.actorId)) throw badInput('actorId is not a valid id', 'actorId');
        where.actorId = args.actorId;
      }
      if (args.entityType) where.entityType = args.entityType;
      return paginate(ctx.em, AuditEntry, where, args);
    },
  },
  Mutation: {
    register: async (_: unknown, { input }: { input: unknown }, ctx: Ctx) => {
      const policy = ctx.config.registrationPolicy;
      if (policy === 'closed') throw forbidden('Registration is closed: an ADMIN creates accounts (REGISTRATION_POLICY=closed)');
      const data = parseInput(registerInput, input);
      if (policy === 'approval') {
        // The same answer whether or not the email already has an account (no account discovery),
        // in the same time: a taken email hashes the password too (createUser hashes a new one).
        if (await findByEmail(ctx.em, data.email)) {
          await hashPassword(data.password);
        } else {
          await createUser(ctx.em, { ...data, role: 'SALES' }, null, { approved: false, pendingApproval: true }).catch((err: unknown) => {
            if ((err as { extensions?: { code?: unknown } }).extensions?.code !== 'CONFLICT') throw err; // a concurrent twin
          });
        }
        throw pendingApproval('Registration received: the account can sign in once an ADMIN approves it');
      }
      const user = await createUser(ctx.em, { ...data, role: 'SALES' }, null);
      const tokens = issueTokens(ctx.em, user, ctx.config);
      await ctx.em.flush();
      return tokens;
    },
    login: async (_: unknown, args: { email: string; password: string }, ctx: Ctx) => {
      const user = await findByEmail(ctx.em, args.email);
      const ok = user ? await verifyPassword(user.passwordHash, args.password) : (await verifyPassword(await timingDummyHash(), args.password)) && false;
      if (!user || !ok || !user.active) {
        stageAudit(ctx.em, {
          // Anonymous: whoever typed the password is not known to be the account's owner (the victim).
          actorId: null,
          action: 'user.login_failed',
          entityType: 'User',
          entityId: user?.id ?? null,
          // Never the typed email: it can be a password typed into the wrong box. A known account is
          // identified by entityId; an unknown one by a short hash (to correlate attempts).
          details: {
            ...(user ? {} : { emailSha256: createHash('sha256').update(args.email.trim().toLowerCase()).digest('hex').slice(0, 16) }),
            reason: user && ok && !user.active ? 'inactive' : 'bad credentials',
          },
        });
        await ctx.em.flush();
        // Same message for unknown email, wrong password and deactivated user.
        throw unauthenticated('Invalid email or password');
      }
      stageAudit(ctx.em, { actorId: user.id, action: 'user.login', entityType: 'User', entityId: user.id });
      ctx.emit('user.login', user.id, { userId: user.id, email: user.email }, { actorId: user.id });
      const tokens = issueTokens(ctx.em, user, ctx.config);
      await ctx.em.flush();
      return tokens;
    },
    refreshToken: async (_: unknown, { refreshToken }: { refreshToken: string }, ctx: Ctx) =>
      rotateRefreshToken(ctx.em, refreshToken, ctx.config, {
        // A used refresh token presented again: one of the two holders stole it. Its family is
        // revoked (tokens.ts) and so is every access token of the user (token version), audited.
        // The user's row is locked for the write (loadForWrite), as every write of the user aggregate.
        onReuse: (userId) =>
          ctx.write(async ({ em, emit }) => {
            const user = await loadForWrite(em, User, { id: userId });
            if (!user) return;
            user.tokenVersion += 1;
            stageAudit(em, { actorId: null, action: 'user.refresh_token_reused', entityType: 'User', entityId: user.id, details: { answer: 'family and access tokens revoked' } });
            emit('user.logout', user.id, { userId: user.id, tokenVersion: user.tokenVersion });
          }),
      }),
    logout: async (_: unknown, __: unknown, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      // The user's row is locked for the write (loadForWrite): the event's snapshot is what commits.
      return ctx.write(async ({ em, emit }) => {
        await revokeAllFor(em, me.userId);
        // Signing out ends every access token of the user too (and the sockets opened with them).
        const user = await loadForWrite(em, User, { id: me.userId });
        if (user) user.tokenVersion += 1;
        stageAudit(em, { actorId: me.userId, action: 'user.logout', entityType: 'User', entityId: me.userId });
        emit('user.logout', me.userId, { userId: me.userId, ...(user ? { tokenVersion: user.tokenVersion } : {}) });
        return true;
      });
    },
    changePassword: async (_: unknown, args: { currentPassword: string; newPassword: string }, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const password = parseInput(z.object({ newPassword }), { newPassword: args.newPassword }).newPassword;
      // The user's row is locked for the write (loadForWrite): the user.updated snapshot is what commits.
      const tokens = await ctx.write(async ({ em, emit }) => {
        const user = await loadForWrite(em, User, { id: me.userId });
        if (!user?.active) throw unauthenticated('The account is no longer active');
        if (!(await verifyPassword(user.passwordHash, args.currentPassword))) {
          // The failed attempt's audit entry commits; the error is thrown after the commit.
          stageAudit(em, { actorId: me.userId, action: 'user.password_change_failed', entityType: 'User', entityId: me.userId });
          return null;
        }
        if (await verifyPassword(user.passwordHash, password)) throw badInput('The new password must differ from the current one', 'newPassword');
        user.passwordHash = await hashPassword(password);
        await endSessions(em, emit, user, 'changed');
        stageAudit(em, { actorId: me.userId, action: 'user.password_changed', entityType: 'User', entityId: me.userId });
        return issueTokens(em, user, ctx.config);
      });
      // Counted by the gateway's password protection like a failed login (field currentPassword).
      if (!tokens) throw badInput('The current password is not correct', 'currentPassword');
      return tokens;
    },
    requestPasswordReset: async (_: unknown, args: { email: string }, ctx: Ctx) => {
      const { email } = parseInput(resetRequestInput, { email: args.email });
      await stageResetRequest(ctx.em, email, ctx.config);
      await ctx.em.flush();
      return true;
    },
    resetPassword: async (_: unknown, args: { token: string; newPassword: string }, ctx: Ctx) => {
      const password = parseInput(z.object({ newPassword }), { newPassword: args.newPassword }).newPassword;
      if (typeof args.token !== 'string' || args.token.length === 0 || args.token.length > 200) {
        throw unauthenticated('Invalid or expired password reset token');
      }
      // One transaction: the token's claim, the user's row (locked by claimResetToken), the event.
      return ctx.write(async ({ em, emit }) => {
        const user = await claimResetToken(em, args.token);
        user.passwordHash = await hashPassword(password);
        await endSessions(em, emit, user, 'reset');
        stageAudit(em, { actorId: user.id, action: 'user.password_reset', entityType: 'User', entityId: user.id });
        return issueTokens(em, user, ctx.config);
      });
    },
    updateUser: async (_: unknown, args: { id: string; input: unknown }, ctx: Ctx) => {
      const me = requireUser(ctx.identity);
      const input = parseInput(updateUserInput, args.input);
      const isAdmin = me.role === 'ADMIN';
      if (!isAdmin && me.userId !== args.id) throw forbidden('You may only update yourself');
      if (!isAdmin && input.role) throw forbidden('Only an ADMIN may change roles');
      return ctx.write(async ({ em, emit }) => {
        const user = isUuid(args.id) ? await loadForWrite(em, User, { id: args.id }) : null;
        if (!user) throw notFound('User', args.id);
        if (!user.active) throw conflict('User is deactivated');
        const changes: string[] = [];
        if (input.name && input.name !== user.name) {
          user.name = input.name;
          changes.push('name');
        }
        if (input.role && input.role !== user.role) {
          await keepAnAdmin(em, user);
          stageAudit(em, { actorId: me.userId, action: 'user.role_changed', entityType: 'User', entityId: user.id, details: { from: user.role, to: input.role } });
          user.role = input.role;
          // An ADMIN granting a role vouches for the user; earlier access tokens carry the old role.
          user.approved = true;
          user.tokenVersion += 1;
          changes.push('role');
        }
        if (changes.length > 0) {
          stageAudit(em, { actorId: me.userId, action: 'user.updated', entityType: 'User', entityId: user.id, details: { changes } });
          emit('user.updated', user.id, { ...userEventData(user), changes });
        }
        return user;
      });
    },
    approveUser: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireRole(ctx.identity, 'ADMIN', 'MANAGER');
      return ctx.write(async ({ em, emit }) => {
        const user = isUuid(id) ? await loadForWrite(em, User, { id }) : null;
        if (!user) throw notFound('User', id);
        if (user.pendingApproval) {
          if (me.role !== 'ADMIN') throw forbidden('Only an ADMIN may activate a registration pending approval');
          user.pendingApproval = false;
          user.active = true;
          user.tokenVersion += 1;
        } else if (!user.active) {
          throw conflict('User is deactivated');
        }
        if (user.approved && user.active) return user;
        user.approved = true;
        stageAudit(em, { actorId: me.userId, action: 'user.approved', entityType: 'User', entityId: user.id });
        emit('user.updated', user.id, { ...userEventData(user), changes: ['approved'] });
        return user;
      });
    },
    createUser: async (_: unknown, { input }: { input: unknown }, ctx: Ctx) => {
      const me = requireRole(ctx.identity, 'ADMIN');
      const data = parseInput(createUserInput, input);
      return createUser(ctx.em, data, me.userId, { approved: true });
    },
    deleteUser: async (_: unknown, { id }: { id: string }, ctx: Ctx) => {
      const me = requireRole(ctx.identity, 'ADMIN');
      if (me.userId === id) throw conflict('You cannot delete yourself');
      return ctx.write(async ({ em, emit }) => {
        const user = isUuid(id) ? await loadForWrite(em, User, { id }) : null;
        if (!user) throw notFound('User', id);
        if (!user.active) throw conflict('User is already deleted');
        await keepAnAdmin(em, user);
        return deactivateUser(em, user, me, emit);
      });
    },
  },
  User: {
    __resolveReference: async (ref: { id: string }, ctx: Ctx) => {
      requireUser(ctx.identity);
      return isUuid(ref.id) ? ctx.loaders.user.load(ref.id) : null;
    },
    // Colleagues' names are everyone's business; their email, role and status are not (SALES).
    email: (u: User, _: unknown, ctx: Ctx) => personal(u, ctx).email,
    role: (u: User, _: unknown, ctx: Ctx) => personal(u, ctx).role,
    active: (u: User, _: unknown, ctx: Ctx) => personal(u, ctx).active,
    approved: (u: User, _: unknown, ctx: Ctx) => personal(u, ctx).approved,
  },
  AuthPayload: {
    user: (payload: { user: User }) => {
      signedIn.add(payload.user);
      return payload.user;
    },
  },
  AuditEntry: {
    at: (entry: AuditEntry) => entry.createdAt,
    actor: (entry: AuditEntry, _: unknown, ctx: Ctx) => (entry.actorId ? ctx.loaders.user.load(entry.actorId) : null),
  },
};

/** Users just signed in (an AuthPayload's user): the caller is that user, before any token exists. */
const signedIn = new WeakSet<User>();

/** A user's personal fields: for the user themself and for ADMIN, MANAGER and COMPLIANCE; FORBIDDEN for others. */
function personal(user: User, ctx: Ctx): User {
  if (signedIn.has(user)) return user;
  const me = requireUser(ctx.identity);
  if (me.userId === user.id || me.role !== 'SALES') return user;
  throw forbidden("Only the user, ADMIN, MANAGER and COMPLIANCE may see a user's email, role and status");
}

/**
 * Ends every session of `user` (a changed or reset password): refresh tokens revoked, token version
 * bumped and announced in user.updated (the gateway refuses older access tokens and closes their
 * sockets — the mechanism of logout and deactivation). The caller issues the new session; `user`
 * is locked by the caller's write (loadForWrite).
 */
async function endSessions(em: EntityManager, emit: WriteContext['emit'], user: User, how: 'changed' | 'reset'): Promise<void> {
  await revokeAllFor(em, user.id);
  user.tokenVersion += 1;
  emit('user.updated', user.id, { ...userEventData(user), changes: ['password'] }, { actorId: user.id });
  // The account's owner hears of it (in the same transaction: no mail for a change that did not happen).
  stageMail(em, {
    to: user.email,
    subject: 'Your CRM password was changed',
    text: [
      `Hello ${user.name},`,
      '',
      `The password of your CRM account was ${how === 'reset' ? 'reset with a link sent to this address' : 'changed'} at ${new Date().toISOString()}.`,
      'Every other session of your account has been signed out.',
      '',
      'If this was not you, ask for a password reset at once and tell your administrator.',
    ].join('\n'),
  });
}

/** Deactivates a user (its row locked by the caller's write), revokes their sessions and starts the user-deletion saga (one commit). */
async function deactivateUser(em: EntityManager, user: User, actor: Identity, emit: WriteContext['emit']) {
  const sagaId = randomUUID();
  user.active = false;
  user.pendingApproval = false;
  user.tokenVersion += 1;
  await revokeAllFor(em, user.id);
  stageAudit(em, { actorId: actor.userId, action: 'user.deleted', entityType: 'User', entityId: user.id, details: { sagaId } });
  const cause = { actorId: actor.userId, correlationId: sagaId };
  emit('user.deleted', user.id, { ...userEventData(user), sagaId }, cause);
  emit(
    'user.saga_step',
    sagaId,
    {
      sagaId,
      sagaType: 'user-deletion',
      subjectId: user.id,
      step: 'auth.deactivate-user',
      status: 'DONE',
      detail: null,
      ends: null,
      expectedSteps: USER_DELETION_STEPS,
    },
    cause,
  );
  return { id: sagaId };
}

/** The steps of the user-deletion saga, in the order ARCHITECTURE.md gives them. */
export const USER_DELETION_STEPS = [
  'auth.deactivate-user',
  'customer.reassign-customers',
  'sales-activity.remove-activities',
  'opportunity.cancel-requests',
  'analytics.archive-notifications',
];
