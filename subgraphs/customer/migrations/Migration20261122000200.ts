import { Migration } from '@mikro-orm/migrations';

/**
 * Customers and the rep directory. Search (`customers(search:)`) is a substring ILIKE over name,
 * email and phone: with pg_trgm (real Postgres) each column gets a trigram GIN index, which serves
 * `ILIKE '%term%'`; where the extension cannot be created (embedded PGlite without the contrib
 * extension loaded) the DO block falls back to lower() btree indexes and a plain scan.
 */
export class Migration20261122000200 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE reps (
      id uuid PRIMARY KEY,
      name text NOT NULL,
      email text NOT NULL,
      active boolean NOT NULL DEFAULT true,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    this.addSql('CREATE INDEX reps_active ON reps (created_at, id) WHERE active');
    this.addSql(`CREATE TABLE customers (
      id uuid PRIMARY KEY,
      name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
      email text,
      phone text,
      industry text,
      size text CHECK (size IN ('SMALL', 'MEDIUM', 'LARGE', 'ENTERPRISE')),
      investment_profile text CHECK (investment_profile IN ('CONSERVATIVE', 'MODERATE', 'AGGRESSIVE')),
      risk_tolerance text CHECK (risk_tolerance IN ('LOW', 'MEDIUM', 'HIGH')),
      assigned_rep_id uuid,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz,
      deleted_by_saga uuid
    )`);
    // Keyset pagination (created_at DESC, id DESC) over live rows, overall and per rep.
    this.addSql('CREATE INDEX customers_live_created ON customers (created_at DESC, id DESC) WHERE deleted_at IS NULL');
    this.addSql('CREATE INDEX customers_rep_created ON customers (assigned_rep_id, created_at DESC, id DESC) WHERE deleted_at IS NULL');
    this.addSql('CREATE INDEX customers_deleted_saga ON customers (deleted_by_saga) WHERE deleted_by_saga IS NOT NULL');
    this.addSql(`DO $do$
BEGIN
  BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops) WHERE deleted_at IS NULL;
    CREATE INDEX customers_email_trgm ON customers USING gin (email gin_trgm_ops) WHERE deleted_at IS NULL;
    CREATE INDEX customers_phone_trgm ON customers USING gin (phone gin_trgm_ops) WHERE deleted_at IS NULL;
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%); customer search falls back to lower() btree indexes', SQLERRM;
    CREATE INDEX customers_name_lower ON customers (lower(name) text_pattern_ops) WHERE deleted_at IS NULL;
    CREATE INDEX customers_email_lower ON customers (lower(email) text_pattern_ops) WHERE deleted_at IS NULL;
    CREATE INDEX customers_phone_lower ON customers (lower(phone) text_pattern_ops) WHERE deleted_at IS NULL;
  END;
END
$do$`);
  }
}
