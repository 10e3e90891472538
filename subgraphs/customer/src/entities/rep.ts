import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, updatedAtColumn, defineRow } from '@crm/database';

/**
 * The local directory of sales reps, fed by user.* events from auth (no reads of auth's tables).
 * `active` is true only for active users whose role is SALES; `approved` when an ADMIN or MANAGER
 * approved the user (only approved reps receive customers by automatic reassignment).
 */
export const Rep = defineRow({
  name: 'Rep',
  tableName: 'reps',
  properties: {
    id: p.uuid().primary(),
    name: p.text(),
    email: p.text(),
    active: p
      .boolean()
      .default(true)
      .onCreate(() => true),
    approved: p
      .boolean()
      .default(false)
      .onCreate(() => false),
    createdAt: createdAtColumn(),
    updatedAt: updatedAtColumn(),
  },
});
export type Rep = InferEntity<typeof Rep>;
