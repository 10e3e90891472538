import { EntitySchema } from '@mikro-orm/postgresql';
import type { Role } from '@crm/kit';

export class User {
  id!: string;
  email!: string;
  name!: string;
  role!: Role;
  active = true;
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
    passwordHash: { type: 'text', fieldName: 'password_hash', hidden: true, lazy: false },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at', onUpdate: () => new Date() },
  },
});
