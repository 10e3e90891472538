import { Migration } from '@mikro-orm/migrations';

/** The rep directory keeps the aggregate version of the user.* event it copied: only a newer one changes a row. */
export class Migration20261207000200 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE reps ADD COLUMN IF NOT EXISTS version bigint');
  }
}
