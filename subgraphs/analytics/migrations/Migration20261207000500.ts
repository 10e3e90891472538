import { Migration } from '@mikro-orm/migrations';

/**
 * Every event-fed copy keeps the aggregate version of the event it copied (customer_facts already
 * does): user_refs, task_facts, approval_facts and meeting_facts apply only a newer version, so a
 * redelivery or a replayed dead letter cannot roll them back.
 */
export class Migration20261207000500 extends Migration {
  override async up(): Promise<void> {
    for (const table of ['user_refs', 'task_facts', 'approval_facts', 'meeting_facts']) {
      this.addSql(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS version bigint`);
    }
  }
}
