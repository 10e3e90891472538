import { EntitySchema } from '@mikro-orm/postgresql';

export class Meeting {
  id!: string;
  customerId!: string;
  repId!: string;
  startsAt!: Date;
  summary!: string;
  nextAction: string | null = null;
  /** Set by a customer-deletion saga: hidden from every read until that saga restores it. */
  removedBySaga: string | null = null;
  createdAt: Date = new Date();
}

export const MeetingSchema = new EntitySchema<Meeting>({
  class: Meeting,
  tableName: 'meetings',
  properties: {
    id: { type: 'uuid', primary: true },
    customerId: { type: 'uuid', fieldName: 'customer_id' },
    repId: { type: 'uuid', fieldName: 'rep_id' },
    startsAt: { type: 'datetime', fieldName: 'starts_at' },
    summary: { type: 'text' },
    nextAction: { type: 'text', nullable: true, fieldName: 'next_action' },
    removedBySaga: { type: 'uuid', nullable: true, fieldName: 'removed_by_saga' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});
