import { Migration } from '@mikro-orm/migrations';

/** Reps an ADMIN or MANAGER approved (user.* events' `approved`): the only targets of automatic reassignment. */
export class Migration20261129000200 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE reps ADD COLUMN approved boolean NOT NULL DEFAULT false');
  }
}
