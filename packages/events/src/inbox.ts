/**
 * The idempotent inbox: a consumer records each handled event id in the same transaction as the
 * effect. A redelivered id finds its row and the handler is skipped.
 */
import { p, type InferEntity } from '@mikro-orm/postgresql';
import { defineRow } from '@crm/database';

export const InboxRecord = defineRow({
  name: 'InboxRecord',
  tableName: 'inbox',
  properties: {
    consumer: p.text().primary(),
    eventId: p.uuid().primary().fieldName('event_id'),
    handledAt: p
      .datetime()
      .fieldName('handled_at')
      .defaultRaw('now()')
      .onCreate(() => new Date()),
  },
});
export type InboxRecord = InferEntity<typeof InboxRecord>;
