import { EntitySchema } from '@mikro-orm/postgresql';
import type { Role } from '@crm/runtime';

export class User {
  id!: string;
  email!: string;
  name!: string;
  role!: Role;
  active = true;
  /** Approved by an ADMIN or MANAGER (may receive customers by automatic reassignment). */
  approved = false;
  /** Registered under REGISTRATION_POLICY=approval: inactive until an ADMIN approves. */
  pendingApproval = false;
  /** Access tokens with a lower `tv` claim are revoked. */
  tokenVersion = 0;
  passwordHash!: string;
  createdAt: Date = new Date();
  updatedAt: Date = new Date();
}

export const UserSchema = new EntitySchema<User>({
  class: User,
  tableName: 'users',
  properties: {
    id: { type: 'uuid', primary: true },
    email: { type: 'text' },
    name: { type: 'text' },
    role: { type: 'text' },
    active: { type: 'boolean' },
    approved: { type: 'boolean' },
    pendingApproval: { type: 'boolean', fieldName: 'pending_approval' },
    tokenVersion: { type: 'integer', fieldName: 'token_version' },
    passwordHash: { type: 'text', fieldName: 'password_hash', hidden: true, lazy: false },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at', onUpdate: () => new Date() },
  },
});
