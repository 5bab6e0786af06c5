/**
 * The saga log's schema, as numbered migrations applied in order at start (each in a
 * transaction). SQLite and PostgreSQL share the shape; only types differ.
 *
 * - sagas: one row per saga, its current status, and (PostgreSQL) which instance owns it until when;
 * - saga_events: the journal, the source of truth; `data` is the whole record as JSON;
 * - definitions: every definition version a saga ran with, so recovery runs that exact version;
 * - idempotency_keys: client Idempotency-Keys, the saga each started and the answer given.
 */
export type Dialect = 'sqlite' | 'postgres';

const ms = (d: Dialect): string => (d === 'sqlite' ? 'INTEGER' : 'BIGINT');

export function migrations(d: Dialect): readonly string[][] {
  return [
    [
      `CREATE TABLE sagas (
        id TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        version TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at ${ms(d)} NOT NULL,
        updated_at ${ms(d)} NOT NULL,
        finished_at ${ms(d)},
        owner TEXT,
        lease_expires_at ${ms(d)}
      )`,
      `CREATE INDEX sagas_started_at ON sagas (started_at)`,
      `CREATE INDEX sagas_unfinished ON sagas (lease_expires_at) WHERE finished_at IS NULL`,
      `CREATE TABLE saga_events (
        saga_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at ${ms(d)} NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (saga_id, seq)
      )`,
      `CREATE TABLE definitions (
        version TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        file TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at ${ms(d)} NOT NULL
      )`,
      `CREATE TABLE idempotency_keys (
        definition TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        saga_id TEXT NOT NULL,
        answer TEXT,
        created_at ${ms(d)} NOT NULL,
        PRIMARY KEY (definition, key)
      )`,
      `CREATE INDEX idempotency_keys_saga ON idempotency_keys (saga_id)`,
      `CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)`,
    ],
  ];
}

export const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS sagamesh_migrations (
  version INTEGER PRIMARY KEY,
  applied_at BIGINT NOT NULL
)`;
