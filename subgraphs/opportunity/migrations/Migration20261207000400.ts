import { Migration } from '@mikro-orm/migrations';

/**
 * Customer.approvalRequests reads the newest requests of each customer of a page (kit lean.ts
 * newestByParent): this index serves it in order, at most the bound per customer however many a
 * customer has.
 */
export class Migration20261207000400 extends Migration {
  override async up(): Promise<void> {
    this.addSql('CREATE INDEX IF NOT EXISTS approval_requests_customer_created ON approval_requests (customer_id, created_at DESC, id DESC)');
  }
}
