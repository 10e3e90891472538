import { Migration } from '@mikro-orm/migrations';

/** The owner's aggregate version on customer facts (only a newer customer.* event changes a row); TIMED_OUT sagas. */
export class Migration20261129000500 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE customer_facts ADD COLUMN IF NOT EXISTS version bigint');
    // TIMED_OUT: not finished within SAGA_TIMEOUT_MS; a late step still finishes it.
    this.addSql('ALTER TABLE sagas DROP CONSTRAINT IF EXISTS sagas_status_check');
    this.addSql(`ALTER TABLE sagas ADD CONSTRAINT sagas_status_check CHECK (status IN ('RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED', 'TIMED_OUT'))`);
    this.addSql('ALTER TABLE sagas ADD COLUMN IF NOT EXISTS timed_out_at timestamptz');
    this.addSql(`CREATE INDEX IF NOT EXISTS sagas_running ON sagas (started_at) WHERE status = 'RUNNING'`);
  }
}
