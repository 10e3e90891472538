import { Migration } from '@mikro-orm/migrations';

export class Migration20261122000400 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE approval_requests (
      id uuid PRIMARY KEY,
      customer_id uuid NOT NULL,
      requester_id uuid NOT NULL,
      approver_id uuid,
      title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
      description text CHECK (description IS NULL OR char_length(description) <= 5000),
      amount double precision CHECK (amount IS NULL OR amount >= 0),
      status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'RECALLED', 'CANCELLED')),
      decision_comment text,
      created_at timestamptz NOT NULL DEFAULT now(),
      decided_at timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now(),
      version integer NOT NULL DEFAULT 1
    )`);
    // pendingApprovals for MANAGER/ADMIN/COMPLIANCE: status = PENDING, newest first
    this.addSql('CREATE INDEX approval_requests_status_created ON approval_requests (status, created_at DESC, id DESC)');
    // pendingApprovals for others, user.deleted cancellation, SALES scoping
    this.addSql('CREATE INDEX approval_requests_requester ON approval_requests (requester_id, status, created_at DESC, id DESC)');
    // Customer.approvalRequests, customer.deleted check (APPROVED within 30 days) and cancellation
    this.addSql('CREATE INDEX approval_requests_customer ON approval_requests (customer_id, status, decided_at DESC)');
    // Local directory of customers, fed by customer.* events (no reads of the customer subgraph's tables).
    this.addSql(`CREATE TABLE customer_refs (
      id uuid PRIMARY KEY,
      name text NOT NULL,
      assigned_rep_id uuid,
      deleted boolean NOT NULL DEFAULT false,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX customer_refs_rep ON customer_refs (assigned_rep_id)');
  }
}
