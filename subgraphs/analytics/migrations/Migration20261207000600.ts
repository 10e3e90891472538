import { Migration } from '@mikro-orm/migrations';

/**
 * A per-recipient order for notifications (the resumable live feed, `notificationAdded(after:)`):
 * `seq` from a database sequence, taken while the recipient's advisory lock is held (notify.ts), so
 * one recipient's notifications commit in `seq` order. Existing rows are numbered by creation.
 */
export class Migration20261207000600 extends Migration {
  override async up(): Promise<void> {
    this.addSql('CREATE SEQUENCE IF NOT EXISTS notifications_seq AS bigint');
    this.addSql('ALTER TABLE notifications ADD COLUMN IF NOT EXISTS seq bigint');
    this.addSql(`UPDATE notifications n SET seq = o.seq
      FROM (SELECT id, nextval('notifications_seq') AS seq FROM (SELECT id FROM notifications WHERE seq IS NULL ORDER BY created_at, id) x) o
      WHERE n.id = o.id`);
    this.addSql(`ALTER TABLE notifications ALTER COLUMN seq SET DEFAULT nextval('notifications_seq')`);
    this.addSql('ALTER TABLE notifications ALTER COLUMN seq SET NOT NULL');
    this.addSql('ALTER SEQUENCE notifications_seq OWNED BY notifications.seq');
    this.addSql('CREATE UNIQUE INDEX IF NOT EXISTS notifications_recipient_seq ON notifications (recipient_id, seq)');
  }
}
