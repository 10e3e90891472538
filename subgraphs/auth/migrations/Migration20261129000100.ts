import { Migration } from '@mikro-orm/migrations';

/**
 * Registration policy and token revocation (issue 15):
 * - approved: an ADMIN or MANAGER vouched for the user; only approved SALES reps receive customers
 *   by automatic reassignment. Existing users are not approved: an ADMIN reviews them.
 * - pending_approval: registered under REGISTRATION_POLICY=approval, inactive until approved.
 * - token_version: the `tv` claim of access tokens; bumped on a role or active change and on logout,
 *   which revokes every earlier access token at the gateway.
 */
export class Migration20261129000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE users ADD COLUMN approved boolean NOT NULL DEFAULT false');
    this.addSql('ALTER TABLE users ADD COLUMN pending_approval boolean NOT NULL DEFAULT false');
    this.addSql('ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0');
    this.addSql(`UPDATE users SET approved = true WHERE role <> 'SALES'`);
  }
}
