import { Migration } from '@mikro-orm/migrations';

/** Tables every subgraph has: the outbox and the inbox. Runs first in each subgraph's list. */
export class KitMigration20261122000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`CREATE TABLE IF NOT EXISTS outbox (
      id uuid PRIMARY KEY,
      topic text NOT NULL,
      key text NOT NULL,
      type text NOT NULL,
      envelope jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      sent_at timestamptz,
      attempts integer NOT NULL DEFAULT 0,
      last_error text
    )`);
    this.addSql('CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL');
    this.addSql(`CREATE TABLE IF NOT EXISTS inbox (
      consumer text NOT NULL,
      event_id uuid NOT NULL,
      handled_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (consumer, event_id)
    )`);
  }
}

/** The outbox keeps the W3C traceparent of the span that staged each event (telemetry). */
export class KitMigration20261129000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text');
  }
}

/**
 * Order and versions from the database: each outbox row gets, when inserted, the next version of
 * its aggregate (topic + key; the counter row is locked until commit, so one aggregate's versions
 * follow its commit order) and then its place in a sequence, which the relay publishes by.
 * The version is also written into the envelope (aggregateVersion). Rows that can never be
 * published are parked (failed_at) and skipped; attempts and last_error say why.
 */
export class KitMigration20261129000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql('CREATE SEQUENCE IF NOT EXISTS outbox_seq');
    this.addSql('ALTER TABLE outbox ADD COLUMN IF NOT EXISTS seq bigint, ADD COLUMN IF NOT EXISTS aggregate_version bigint, ADD COLUMN IF NOT EXISTS failed_at timestamptz');
    this.addSql(`UPDATE outbox o SET seq = s.n FROM (SELECT id, nextval('outbox_seq') AS n FROM (SELECT id FROM outbox ORDER BY created_at, id) ordered) s WHERE o.id = s.id`);
    this.addSql(`CREATE TABLE IF NOT EXISTS aggregate_versions (
      topic text NOT NULL,
      key text NOT NULL,
      version bigint NOT NULL,
      PRIMARY KEY (topic, key)
    )`);
    this.addSql(`CREATE OR REPLACE FUNCTION outbox_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE v bigint;
      BEGIN
        INSERT INTO aggregate_versions AS a (topic, key, version) VALUES (NEW.topic, NEW.key, 1)
          ON CONFLICT (topic, key) DO UPDATE SET version = a.version + 1
          RETURNING a.version INTO v;
        NEW.aggregate_version := v;
        NEW.seq := nextval('outbox_seq');
        NEW.envelope := jsonb_set(NEW.envelope, '{aggregateVersion}', to_jsonb(v));
        RETURN NEW;
      END $$`);
    this.addSql('DROP TRIGGER IF EXISTS outbox_stamp ON outbox');
    this.addSql('CREATE TRIGGER outbox_stamp BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_stamp()');
    this.addSql('DROP INDEX IF EXISTS outbox_unsent');
    this.addSql('CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL AND failed_at IS NULL');
    this.addSql('CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL');
    this.addSql('CREATE INDEX IF NOT EXISTS inbox_handled ON inbox (handled_at)');
  }
}

/**
 * Relay leases: a relay claims unsent rows in a short transaction (lease_owner, lease_until),
 * publishes them outside any transaction and marks them sent after the broker's acknowledgement.
 * The index serves the claim's "no earlier unsent row of this aggregate is leased by another" test.
 */
export class KitMigration20261207000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE outbox ADD COLUMN IF NOT EXISTS lease_owner text, ADD COLUMN IF NOT EXISTS lease_until timestamptz');
    this.addSql('CREATE INDEX IF NOT EXISTS outbox_unsent_key ON outbox (topic, key, seq) WHERE sent_at IS NULL AND failed_at IS NULL');
  }
}

/**
 * Retention of the version counters. A counter untouched for the retention time may be deleted
 * (events/retention.ts); the largest version ever deleted is kept in aggregate_versions_floor and a
 * new counter starts above it, so an aggregate's versions only ever grow, even across a prune (a
 * copy holding version 7 of a key never meets a version 1 of it again). The prune locks the floor
 * row; a new counter reads it FOR SHARE, so a counter created while a prune runs sees the new floor.
 */
export class KitMigration20261207000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql('ALTER TABLE aggregate_versions ADD COLUMN IF NOT EXISTS touched_at timestamptz NOT NULL DEFAULT now()');
    this.addSql('CREATE INDEX IF NOT EXISTS aggregate_versions_touched ON aggregate_versions (touched_at)');
    this.addSql(`CREATE TABLE IF NOT EXISTS aggregate_versions_floor (
      one boolean PRIMARY KEY DEFAULT true CHECK (one),
      version bigint NOT NULL
    )`);
    this.addSql('INSERT INTO aggregate_versions_floor (one, version) VALUES (true, 0) ON CONFLICT DO NOTHING');
    this.addSql(`CREATE OR REPLACE FUNCTION outbox_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE v bigint; floor_v bigint;
      BEGIN
        UPDATE aggregate_versions SET version = version + 1, touched_at = now()
          WHERE topic = NEW.topic AND key = NEW.key RETURNING version INTO v;
        IF NOT FOUND THEN
          SELECT version INTO floor_v FROM aggregate_versions_floor FOR SHARE;
          INSERT INTO aggregate_versions AS a (topic, key, version, touched_at) VALUES (NEW.topic, NEW.key, COALESCE(floor_v, 0) + 1, now())
            ON CONFLICT (topic, key) DO UPDATE SET version = a.version + 1, touched_at = now()
            RETURNING a.version INTO v;
        END IF;
        NEW.aggregate_version := v;
        NEW.seq := nextval('outbox_seq');
        NEW.envelope := jsonb_set(NEW.envelope, '{aggregateVersion}', to_jsonb(v));
        RETURN NEW;
      END $$`);
  }
}

export const kitMigrations = [
  { name: 'Kit20261122000000', class: KitMigration20261122000000 },
  { name: 'Kit20261129000000', class: KitMigration20261129000000 },
  { name: 'Kit20261129000100', class: KitMigration20261129000100 },
  { name: 'Kit20261207000000', class: KitMigration20261207000000 },
  { name: 'Kit20261207000100', class: KitMigration20261207000100 },
];
