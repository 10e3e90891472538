/**
 * The idempotent inbox: a consumer records each handled event id in the same transaction as the
 * effect. A redelivered id finds its row and the handler is skipped.
 */
import { EntitySchema } from '@mikro-orm/postgresql';

export class InboxRecord {
  consumer!: string;
  eventId!: string;
  handledAt: Date = new Date();
}

export const InboxRecordSchema = new EntitySchema<InboxRecord>({
  class: InboxRecord,
  tableName: 'inbox',
  properties: {
    consumer: { type: 'text', primary: true },
    eventId: { type: 'uuid', primary: true, fieldName: 'event_id' },
    handledAt: { type: 'datetime', fieldName: 'handled_at' },
  },
});
