import { Migration } from '@mikro-orm/migrations';

/** Analytics: notifications, the user directory, report projections, event metrics, the saga read model. */
export class Migration20261122000500 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE notifications (
      id uuid PRIMARY KEY,
      recipient_id uuid NOT NULL,
      type text NOT NULL CHECK (type IN ('APPROVAL_REQUESTED', 'APPROVAL_DECIDED', 'TASK_ASSIGNED', 'TASK_DUE_SOON', 'CUSTOMER_ASSIGNED', 'SYSTEM')),
      title text NOT NULL,
      body text,
      entity_type text,
      entity_id text,
      source_event_id uuid NOT NULL,
      read_at timestamptz,
      archived_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (source_event_id, recipient_id)
    )`);
    this.addSql('CREATE INDEX notifications_recipient_live ON notifications (recipient_id, created_at DESC, id DESC) WHERE archived_at IS NULL');
    this.addSql('CREATE INDEX notifications_recipient_unread ON notifications (recipient_id) WHERE archived_at IS NULL AND read_at IS NULL');

    this.addSql(`CREATE TABLE user_refs (
      id text PRIMARY KEY,
      name text NOT NULL,
      role text NOT NULL,
      active boolean NOT NULL DEFAULT true,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX user_refs_role_active ON user_refs (role) WHERE active');

    this.addSql(`CREATE TABLE customer_facts (
      id text PRIMARY KEY,
      size text,
      investment_profile text,
      assigned_rep_id text,
      deleted boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL
    )`);
    this.addSql('CREATE INDEX customer_facts_created ON customer_facts (created_at)');
    this.addSql(`CREATE TABLE meeting_facts (
      id text PRIMARY KEY,
      customer_id text,
      rep_id text,
      starts_at timestamptz NOT NULL,
      created_at timestamptz NOT NULL
    )`);
    this.addSql('CREATE INDEX meeting_facts_starts ON meeting_facts (starts_at)');
    this.addSql(`CREATE TABLE task_facts (
      id text PRIMARY KEY,
      assignee_id text NOT NULL,
      status text NOT NULL,
      created_at timestamptz NOT NULL,
      completed_at timestamptz
    )`);
    this.addSql('CREATE INDEX task_facts_created ON task_facts (created_at)');
    this.addSql('CREATE INDEX task_facts_completed ON task_facts (completed_at) WHERE completed_at IS NOT NULL');
    this.addSql('CREATE INDEX task_facts_assignee ON task_facts (assignee_id, created_at)');
    this.addSql(`CREATE TABLE approval_facts (
      id text PRIMARY KEY,
      requester_id text,
      status text NOT NULL,
      amount double precision,
      requested_at timestamptz NOT NULL,
      decided_at timestamptz
    )`);
    this.addSql('CREATE INDEX approval_facts_requested ON approval_facts (requested_at)');
    this.addSql('CREATE INDEX approval_facts_decided ON approval_facts (decided_at) WHERE decided_at IS NOT NULL');

    this.addSql(`CREATE TABLE report_versions (
      name text PRIMARY KEY,
      version bigint NOT NULL DEFAULT 0
    )`);
    this.addSql(`INSERT INTO report_versions (name, version) VALUES ('customers', 0), ('meetings', 0), ('tasks', 0), ('approvals', 0)`);
    this.addSql(`CREATE TABLE event_metrics (
      type text PRIMARY KEY,
      count bigint NOT NULL DEFAULT 0,
      last_at timestamptz
    )`);

    this.addSql(`CREATE TABLE sagas (
      id text PRIMARY KEY,
      type text NOT NULL,
      subject_id text NOT NULL,
      status text NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'COMPLETED', 'COMPENSATED', 'FAILED')),
      started_at timestamptz NOT NULL,
      ended_at timestamptz,
      expected_steps jsonb,
      requested_by text,
      refused_event_id uuid,
      refused_detail text,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql(`CREATE TABLE saga_steps (
      id uuid PRIMARY KEY,
      saga_id text NOT NULL REFERENCES sagas(id),
      name text NOT NULL,
      status text NOT NULL,
      at timestamptz NOT NULL,
      detail text,
      ends text,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (saga_id, name, status)
    )`);
    this.addSql('CREATE INDEX saga_steps_saga ON saga_steps (saga_id, at)');
  }
}
