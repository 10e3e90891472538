import { Migration } from '@mikro-orm/migrations';

/**
 * Customer search served by one trigram index that is used from the first row on.
 *
 * The first migration's three trigram GIN indexes (name, email, phone) had GIN's default
 * `fastupdate = on`: new rows wait in each index's pending list until a vacuum (or 4 MB of them),
 * and meanwhile the planner costs the index too high to use; and a term matching ~1 % of the rows
 * was planned as a table scan even after a vacuum (the OR of three ILIKEs is estimated far too
 * cheap). At 10k customers every such search read the whole table, three ILIKEs per row (69–90 ms
 * on the 2-core bench machine, bench/results/crm.md).
 *
 * Now: one index on name, email and phone joined by U+0001 — the expression `customers(search:)`
 * filters on (resolvers/index.ts SEARCH_TEXT; keep the two identical) — with `fastupdate = off`, so
 * each write puts its row into the index at once. The three single-column indexes go (one index to
 * maintain per write instead of three). Where pg_trgm cannot be created (see the first migration)
 * there is no trigram index and search stays a filter.
 */
export class Migration20261207000210 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`DO $do$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    CREATE INDEX IF NOT EXISTS customers_search_trgm ON customers
      USING gin ((name || E'\\x01' || coalesce(email, '') || E'\\x01' || coalesce(phone, '')) gin_trgm_ops)
      WITH (fastupdate = off) WHERE deleted_at IS NULL;
    DROP INDEX IF EXISTS customers_name_trgm;
    DROP INDEX IF EXISTS customers_email_trgm;
    DROP INDEX IF EXISTS customers_phone_trgm;
  END IF;
END
$do$`);
  }
}
