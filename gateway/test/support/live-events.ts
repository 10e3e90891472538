/** Bus messages the live feed consumes, as the producing subgraph would publish them. */
import { randomUUID } from 'node:crypto';
import { buildEnvelope } from '@crm/events';

/** A `notification.created` for `recipientId` on its topic, keyed by the notification. */
export function notificationMessage(recipientId: string) {
  const notificationId = randomUUID();
  const env = buildEnvelope(
    'analytics',
    'notification.created',
    notificationId,
    { notificationId, recipientId, type: 'SYSTEM', title: 't', entityType: null, entityId: null },
    { actorId: null },
  );
  return { topic: 'notification.events', key: notificationId, value: JSON.stringify(env) };
}
