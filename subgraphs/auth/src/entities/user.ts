import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, updatedAtColumn, defineRow } from '@crm/database';
import type { Role } from '@crm/runtime';

export const User = defineRow({
  name: 'User',
  tableName: 'users',
  properties: {
    id: p.uuid().primary(),
    email: p.text(),
    name: p.text(),
    role: p.text().$type<Role>(),
    active: p
      .boolean()
      .default(true)
      .onCreate(() => true),
    /** Approved by an ADMIN or MANAGER (may receive customers by automatic reassignment). */
    approved: p
      .boolean()
      .default(false)
      .onCreate(() => false),
    /** Registered under REGISTRATION_POLICY=approval: inactive until an ADMIN approves. */
    pendingApproval: p
      .boolean()
      .fieldName('pending_approval')
      .default(false)
      .onCreate(() => false),
    /** Access tokens with a lower `tv` claim are revoked. */
    tokenVersion: p
      .integer()
      .fieldName('token_version')
      .default(0)
      .onCreate(() => 0),
    passwordHash: p.text().fieldName('password_hash').hidden(),
    createdAt: createdAtColumn(),
    updatedAt: updatedAtColumn(),
  },
});
export type User = InferEntity<typeof User>;
