import { Migration } from '@mikro-orm/migrations';

/**
 * Notifications about a customer (issue 29): `customer_id` — the customer a notification is about
 * (its entity, or the customer of its task / approval request), known from the event that created
 * it; `archived_by_saga` — the customer-deletion saga that archived it, so that saga's compensation
 * restores exactly those. Older rows: the customer of CUSTOMER-entity notifications is their entity.
 * `deleted_at` — deleteNotification by its recipient: a soft delete, hidden from every read, list and
 * count, but the row (and its `seq`) stays, so its id still works as a resume cursor of the live feed
 * (`notificationAdded(after:)`). meeting_facts `deleted` — a deleted meeting's tombstone, kept with
 * the deletion's version so an older meeting event arriving later cannot bring it back.
 */
export class Migration20261207000700 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE notifications ADD COLUMN IF NOT EXISTS customer_id text');
    this.addSql('ALTER TABLE notifications ADD COLUMN IF NOT EXISTS archived_by_saga uuid');
    this.addSql(`UPDATE notifications SET customer_id = entity_id WHERE customer_id IS NULL AND entity_type = 'Customer'`);
    this.addSql('CREATE INDEX IF NOT EXISTS notifications_customer ON notifications (customer_id) WHERE customer_id IS NOT NULL');
    this.addSql('ALTER TABLE notifications ADD COLUMN IF NOT EXISTS deleted_at timestamptz');
    this.addSql('ALTER TABLE meeting_facts ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false');
    this.addSql('CREATE INDEX IF NOT EXISTS notifications_archived_by_saga ON notifications (archived_by_saga) WHERE archived_by_saga IS NOT NULL');
  }
}
