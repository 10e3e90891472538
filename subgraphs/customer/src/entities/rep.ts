import { EntitySchema } from '@mikro-orm/postgresql';

/**
 * The local directory of sales reps, fed by user.* events from auth (no reads of auth's tables).
 * `active` is true only for active users whose role is SALES; `approved` when an ADMIN or MANAGER
 * approved the user (only approved reps receive customers by automatic reassignment).
 */
export class Rep {
  id!: string;
  name!: string;
  email!: string;
  active = true;
  approved = false;
  createdAt: Date = new Date();
  updatedAt: Date = new Date();
}

export const RepSchema = new EntitySchema<Rep>({
  class: Rep,
  tableName: 'reps',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'text' },
    email: { type: 'text' },
    active: { type: 'boolean' },
    approved: { type: 'boolean' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
    updatedAt: { type: 'datetime', fieldName: 'updated_at', onUpdate: () => new Date() },
  },
});
