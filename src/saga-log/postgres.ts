import { Pool } from 'pg';
import type { Clock } from '../clock';
import { ERRORS, SagameshError } from '../errors';
import { parseRecord, toSummary } from './rows';
import type {
  KeyReservation,
  ListOptions,
  PruneCutoffs,
  SagaEvent,
  SagaLog,
  SagaRecord,
  SagaStatus,
  SagaSummary,
  StoredAnswer,
  StoredDefinition,
} from './saga-log';
import { emptyCounts, isFinal, SAGA_STATUSES, statusAfter } from './saga-log';
import { MIGRATIONS_TABLE, migrations } from './schema';

/**
 * The shared saga log (`SAGAMESH_STORE=postgres://…`) for several sagamesh instances.
 *
 * Each saga is owned by the instance that started or claimed it, until `lease_expires_at`; owners
 * renew their leases, and an instance claims unfinished sagas whose lease expired. Lease times are
 * the database's clock, so instances' clocks may disagree. Every append is fenced: it writes only
 * while this instance is still the owner, so an instance that lost a saga (paused, partitioned)
 * cannot record — and therefore cannot send — anything more for it.
 */
export interface PostgresOptions {
  readonly url: string;
  readonly instanceId: string;
  readonly leaseTtlMs: number;
  readonly poolSize?: number;
}

const NOW_MS = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`;
/** Serialises migrations of several instances starting at once. */
const MIGRATION_LOCK = 0x5a6a_e5;

function storeError(err: unknown): SagameshError {
  if (err instanceof SagameshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SagameshError(ERRORS.STORE_UNAVAILABLE, `postgres: ${message}`, [], { cause: err });
}

export class PostgresSagaLog implements SagaLog {
  private readonly seqs = new Map<string, number>();
  /** In-flight reads of a saga's last seq, shared by concurrent first appends after a takeover. */
  private readonly seeds = new Map<string, Promise<number>>();

  static async open(options: PostgresOptions, clock: Clock): Promise<PostgresSagaLog> {
    const pool = new Pool({
      connectionString: options.url,
      max: options.poolSize ?? 20,
      connectionTimeoutMillis: 5000,
      application_name: `sagamesh ${options.instanceId}`,
    });
    // An idle client's error (server restart) must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    try {
      await migrate(pool, clock);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw storeError(err);
    }
    return new PostgresSagaLog(pool, options, clock);
  }

  private constructor(
    private readonly pool: Pool,
    private readonly options: PostgresOptions,
    private readonly clock: Clock,
  ) {}

  private async query<R extends object = Record<string, unknown>>(sql: string, args: unknown[] = []) {
    try {
      return await this.pool.query<R>(sql, args);
    } catch (err) {
      throw storeError(err);
    }
  }

  async append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    if (event.type === 'saga.started') this.seqs.set(sagaId, 0);
    const seq = await this.nextSeq(sagaId);
    const record: SagaRecord = { ...event, sagaId, seq, at: this.clock.now() };
    const data = JSON.stringify(record);
    const me = this.options.instanceId;
    if (event.type === 'saga.started') {
      await this.query(
        `WITH s AS (
           INSERT INTO sagas (id, definition, version, status, started_at, updated_at, owner, lease_expires_at)
           VALUES ($1, $2, $3, 'running', $4, $4, $5, ${NOW_MS} + $6) RETURNING id)
         INSERT INTO saga_events (saga_id, seq, at, type, data) SELECT id, $7, $4, $8, $9 FROM s`,
        [
          sagaId,
          event.definition,
          event.version,
          record.at,
          me,
          this.options.leaseTtlMs,
          seq,
          event.type,
          data,
        ],
      );
      return record;
    }
    const status = statusAfter(event) ?? null;
    const finishedAt = status && isFinal(status) ? record.at : null;
    const result = await this.query(
      `WITH s AS (
         UPDATE sagas SET status = COALESCE($3, status), updated_at = $4, finished_at = COALESCE($5, finished_at)
         WHERE id = $1 AND owner = $2 RETURNING id)
       INSERT INTO saga_events (saga_id, seq, at, type, data) SELECT id, $6, $4, $7, $8 FROM s`,
      [sagaId, me, status, record.at, finishedAt, seq, event.type, data],
    );
    if (result.rowCount === 0) {
      this.seqs.delete(sagaId);
      throw new SagameshError(ERRORS.LEASE_LOST, `saga ${sagaId}`);
    }
    if (finishedAt !== null) this.seqs.delete(sagaId);
    return record;
  }

  private async nextSeq(sagaId: string): Promise<number> {
    if (!this.seqs.has(sagaId)) {
      let seed = this.seeds.get(sagaId);
      if (!seed) {
        seed = this.query<{ seq: number | null }>(
          'SELECT MAX(seq) AS seq FROM saga_events WHERE saga_id = $1',
          [sagaId],
        ).then((r) => r.rows[0]?.seq ?? 0);
        this.seeds.set(sagaId, seed);
      }
      const base = await seed.finally(() => this.seeds.delete(sagaId));
      if (!this.seqs.has(sagaId)) this.seqs.set(sagaId, base);
    }
    const seq = (this.seqs.get(sagaId) ?? 0) + 1;
    this.seqs.set(sagaId, seq);
    return seq;
  }

  async history(sagaId: string): Promise<readonly SagaRecord[]> {
    const r = await this.query<{ data: string }>(
      'SELECT data FROM saga_events WHERE saga_id = $1 ORDER BY seq',
      [sagaId],
    );
    return r.rows.map((row) => parseRecord(row.data));
  }

  async summary(sagaId: string): Promise<SagaSummary | undefined> {
    const r = await this.query('SELECT * FROM sagas WHERE id = $1', [sagaId]);
    return r.rows[0] ? toSummary(r.rows[0]) : undefined;
  }

  async list(opts: ListOptions = {}): Promise<readonly SagaSummary[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const filter = (column: string, op: string, value: string | number | undefined): void => {
      if (value === undefined || value === '') return;
      args.push(value);
      where.push(`${column} ${op} $${args.length}`);
    };
    filter('status', '=', opts.status);
    filter('definition', '=', opts.definition);
    filter('started_at', '>=', opts.since);
    args.push(Math.min(opts.limit ?? 100, 1000));
    const r = await this.query(
      `SELECT * FROM sagas ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC LIMIT $${args.length}`,
      args,
    );
    return r.rows.map((row) => toSummary(row));
  }

  async counts(): Promise<Readonly<Record<SagaStatus, number>>> {
    const counts = emptyCounts();
    const r = await this.query<{ status: string; n: string }>(
      'SELECT status, COUNT(*) AS n FROM sagas GROUP BY status',
    );
    for (const row of r.rows) {
      const status = SAGA_STATUSES.find((s) => s === row.status);
      if (status) counts[status] = Number(row.n);
    }
    return counts;
  }

  async saveDefinition(d: StoredDefinition): Promise<void> {
    await this.query(
      `INSERT INTO definitions (version, name, file, source, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (version) DO NOTHING`,
      [d.version, d.name, d.file, d.source, this.clock.now()],
    );
  }

  async loadDefinition(version: string): Promise<StoredDefinition | undefined> {
    const r = await this.query<{ version: string; name: string; file: string; source: string }>(
      'SELECT version, name, file, source FROM definitions WHERE version = $1',
      [version],
    );
    return r.rows[0];
  }

  /** Takes over unfinished sagas whose owner stopped renewing; SKIP LOCKED keeps two claimers apart. */
  async claimUnfinished(): Promise<readonly string[]> {
    const r = await this.query<{ id: string }>(
      `UPDATE sagas SET owner = $1, lease_expires_at = ${NOW_MS} + $2
       WHERE id IN (
         SELECT id FROM sagas WHERE finished_at IS NULL AND lease_expires_at < ${NOW_MS}
         ORDER BY started_at LIMIT 100 FOR UPDATE SKIP LOCKED)
       RETURNING id`,
      [this.options.instanceId, this.options.leaseTtlMs],
    );
    for (const row of r.rows) this.seqs.delete(row.id);
    return r.rows.map((row) => row.id);
  }

  async renewLeases(running: readonly string[]): Promise<readonly string[]> {
    if (running.length === 0) return [];
    const r = await this.query<{ id: string }>(
      `UPDATE sagas SET lease_expires_at = ${NOW_MS} + $2 WHERE owner = $1 AND id = ANY($3) RETURNING id`,
      [this.options.instanceId, this.options.leaseTtlMs, running],
    );
    const kept = new Set(r.rows.map((row) => row.id));
    return running.filter((id) => !kept.has(id));
  }

  async reserveKey(k: {
    definition: string;
    key: string;
    requestHash: string;
    sagaId: string;
    expiredBefore: number;
  }): Promise<KeyReservation> {
    const inserted = await this.query(
      `INSERT INTO idempotency_keys (definition, key, request_hash, saga_id, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (definition, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, saga_id = EXCLUDED.saga_id,
         answer = NULL, created_at = EXCLUDED.created_at
       WHERE idempotency_keys.created_at < $6`,
      [k.definition, k.key, k.requestHash, k.sagaId, this.clock.now(), k.expiredBefore],
    );
    if ((inserted.rowCount ?? 0) > 0) return { reserved: true };
    const r = await this.query<{ saga_id: string; request_hash: string; answer: string | null }>(
      'SELECT saga_id, request_hash, answer FROM idempotency_keys WHERE definition = $1 AND key = $2',
      [k.definition, k.key],
    );
    const row = r.rows[0];
    if (!row) throw new SagameshError(ERRORS.STORE_UNAVAILABLE, 'idempotency key vanished while reserving');
    return {
      reserved: false,
      sagaId: row.saga_id,
      requestHash: row.request_hash,
      ...(row.answer ? { answer: JSON.parse(row.answer) as StoredAnswer } : {}),
    };
  }

  async releaseKey(definition: string, key: string, sagaId: string): Promise<void> {
    await this.query('DELETE FROM idempotency_keys WHERE definition = $1 AND key = $2 AND saga_id = $3', [
      definition,
      key,
      sagaId,
    ]);
  }

  async saveAnswer(sagaId: string, answer: StoredAnswer): Promise<void> {
    await this.query('UPDATE idempotency_keys SET answer = $1 WHERE saga_id = $2', [
      JSON.stringify(answer),
      sagaId,
    ]);
  }

  async prune(cutoffs: PruneCutoffs): Promise<{ sagas: number; keys: number }> {
    const client = await this.pool.connect().catch((err: unknown) => {
      throw storeError(err);
    });
    try {
      await client.query('BEGIN');
      await client.query(
        'DELETE FROM saga_events WHERE saga_id IN (SELECT id FROM sagas WHERE finished_at IS NOT NULL AND finished_at < $1)',
        [cutoffs.sagasFinishedBefore],
      );
      const sagas = await client.query(
        'DELETE FROM sagas WHERE finished_at IS NOT NULL AND finished_at < $1',
        [cutoffs.sagasFinishedBefore],
      );
      const keys = await client.query('DELETE FROM idempotency_keys WHERE created_at < $1', [
        cutoffs.keysCreatedBefore,
      ]);
      await client.query('COMMIT');
      return { sagas: sagas.rowCount ?? 0, keys: keys.rowCount ?? 0 };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw storeError(err);
    } finally {
      client.release();
    }
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

async function migrate(pool: Pool, clock: Clock): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(MIGRATIONS_TABLE);
    const r = await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM sagamesh_migrations');
    const current = r.rows[0]?.v ?? 0;
    const all = migrations('postgres');
    if (current > all.length) {
      throw new SagameshError(
        ERRORS.STORE_CORRUPT,
        `schema version ${current} is newer than this sagamesh (${all.length})`,
      );
    }
    for (const [i, statements] of all.slice(current).entries()) {
      await client.query('BEGIN');
      for (const sql of statements) await client.query(sql);
      await client.query('INSERT INTO sagamesh_migrations (version, applied_at) VALUES ($1, $2)', [
        current + i + 1,
        clock.now(),
      ]);
      await client.query('COMMIT');
    }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}
