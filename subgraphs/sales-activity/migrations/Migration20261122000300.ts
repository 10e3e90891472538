import { Migration } from '@mikro-orm/migrations';

export class Migration20261122000300 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE customer_refs (
      id uuid PRIMARY KEY,
      name text NOT NULL,
      assigned_rep_id uuid,
      deleted boolean NOT NULL DEFAULT false,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql(`CREATE TABLE meetings (
      id uuid PRIMARY KEY,
      customer_id uuid NOT NULL,
      rep_id uuid NOT NULL,
      starts_at timestamptz NOT NULL,
      summary text NOT NULL,
      next_action text,
      removed_by_saga uuid,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX meetings_customer_created ON meetings (customer_id, created_at DESC, id DESC)');
    this.addSql('CREATE INDEX meetings_rep_starts ON meetings (rep_id, starts_at)');
    this.addSql('CREATE INDEX meetings_removed_by_saga ON meetings (removed_by_saga) WHERE removed_by_saga IS NOT NULL');
    this.addSql(`CREATE TABLE tasks (
      id uuid PRIMARY KEY,
      title text NOT NULL,
      description text,
      status text NOT NULL CHECK (status IN ('TODO', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED')),
      priority text NOT NULL CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH', 'URGENT')),
      due_at timestamptz,
      completed_at timestamptz,
      customer_id uuid,
      assignee_id uuid NOT NULL,
      created_by_id uuid,
      due_soon_for timestamptz,
      removed_by_saga uuid,
      version integer NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX tasks_assignee_created ON tasks (assignee_id, created_at DESC, id DESC)');
    this.addSql('CREATE INDEX tasks_customer_created ON tasks (customer_id, created_at DESC, id DESC)');
    this.addSql("CREATE INDEX tasks_open_due ON tasks (due_at) WHERE status IN ('TODO', 'IN_PROGRESS') AND due_at IS NOT NULL");
    this.addSql('CREATE INDEX tasks_removed_by_saga ON tasks (removed_by_saga) WHERE removed_by_saga IS NOT NULL');
  }
}
