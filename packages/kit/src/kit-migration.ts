import { Migration } from '@mikro-orm/migrations';

/** Tables every subgraph has: the outbox and the inbox. Runs first in each subgraph's list. */
export class KitMigration20261122000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE IF NOT EXISTS outbox (
      id uuid PRIMARY KEY,
      topic text NOT NULL,
      key text NOT NULL,
      type text NOT NULL,
      envelope jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      sent_at timestamptz,
      attempts integer NOT NULL DEFAULT 0,
      last_error text
    )`);
    this.addSql('CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL');
    this.addSql(`CREATE TABLE IF NOT EXISTS inbox (
      consumer text NOT NULL,
      event_id uuid NOT NULL,
      handled_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (consumer, event_id)
    )`);
  }
}

/** The outbox keeps the W3C traceparent of the span that staged each event (telemetry). */
export class KitMigration20261129000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text');
  }
}

export const kitMigrations = [
  { name: 'Kit20261122000000', class: KitMigration20261122000000 },
  { name: 'Kit20261129000000', class: KitMigration20261129000000 },
];
