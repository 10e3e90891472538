import { Migration } from '@mikro-orm/migrations';

/** The owner's aggregate version on the customer directory: only a newer customer.* event changes a row. */
export class Migration20261129000300 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE customer_refs ADD COLUMN IF NOT EXISTS version bigint');
  }
}
