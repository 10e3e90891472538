import { Migration } from '@mikro-orm/migrations';

export class Migration20261122000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE users (
      id uuid PRIMARY KEY,
      email text NOT NULL,
      name text NOT NULL,
      role text NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'SALES', 'COMPLIANCE')),
      active boolean NOT NULL DEFAULT true,
      password_hash text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE UNIQUE INDEX users_email_lower ON users (lower(email))');
    this.addSql('CREATE INDEX users_role_created ON users (role, created_at DESC, id DESC)');
    this.addSql(`CREATE TABLE refresh_tokens (
      id uuid PRIMARY KEY,
      user_id uuid NOT NULL REFERENCES users(id),
      family_id uuid NOT NULL,
      token_hash text NOT NULL UNIQUE,
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      revoked_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id)');
    this.addSql(`CREATE TABLE audit_entries (
      id uuid PRIMARY KEY,
      actor_id uuid,
      action text NOT NULL,
      entity_type text NOT NULL,
      entity_id text,
      created_at timestamptz NOT NULL DEFAULT now(),
      details jsonb,
      event_id uuid UNIQUE
    )`);
    this.addSql('CREATE INDEX audit_entries_created ON audit_entries (created_at DESC, id DESC)');
    this.addSql('CREATE INDEX audit_entries_actor ON audit_entries (actor_id, created_at DESC)');
    this.addSql('CREATE INDEX audit_entries_entity_type ON audit_entries (entity_type, created_at DESC)');
  }
}
