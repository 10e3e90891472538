import { Migration } from '@mikro-orm/migrations';

/**
 * Notifications about a customer (issue 29): `customer_id` — the customer a notification is about
 * (its entity, or the customer of its task / approval request), known from the event that created
 * it; `archived_by_saga` — the customer-deletion saga that archived it, so that saga's compensation
 * restores exactly those. Older rows: the customer of CUSTOMER-entity notifications is their entity.
 */
export class Migration20261207000510 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE notifications ADD COLUMN IF NOT EXISTS customer_id text');
    this.addSql('ALTER TABLE notifications ADD COLUMN IF NOT EXISTS archived_by_saga uuid');
    this.addSql(`UPDATE notifications SET customer_id = entity_id WHERE customer_id IS NULL AND entity_type = 'Customer'`);
    this.addSql('CREATE INDEX IF NOT EXISTS notifications_customer ON notifications (customer_id) WHERE customer_id IS NOT NULL');
    this.addSql('CREATE INDEX IF NOT EXISTS notifications_archived_by_saga ON notifications (archived_by_saga) WHERE archived_by_saga IS NOT NULL');
  }
}
