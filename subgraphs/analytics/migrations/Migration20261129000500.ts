import { Migration } from '@mikro-orm/migrations';

/** The owner's aggregate version on customer facts (only a newer customer.* event changes a row); saga deadlines. */
export class Migration20261129000500 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE customer_facts ADD COLUMN IF NOT EXISTS version bigint');
  }
}
