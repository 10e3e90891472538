import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';

export const Meeting = defineRow({
  name: 'Meeting',
  tableName: 'meetings',
  properties: {
    id: p.uuid().primary(),
    customerId: p.uuid().fieldName('customer_id'),
    repId: p.uuid().fieldName('rep_id'),
    startsAt: p.datetime().fieldName('starts_at'),
    summary: p.text(),
    nextAction: p.text().nullable().fieldName('next_action'),
    /** Set by a customer-deletion saga: hidden from every read until that saga restores it. */
    removedBySaga: p.uuid().nullable().fieldName('removed_by_saga'),
    createdAt: createdAtColumn(),
  },
});
export type Meeting = InferEntity<typeof Meeting>;
