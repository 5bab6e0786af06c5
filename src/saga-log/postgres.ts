import { Pool } from 'pg';
import type { Clock } from '../clock';
import { ERRORS, SagameshError } from '../errors';
import { bySaga } from './batches';
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
import {
  duplicateStart,
  emptyCounts,
  isFinal,
  SAGA_STATUSES,
  sagaRecord,
  serialiseRecord,
  statusAfter,
} from './saga-log';
import { MIGRATIONS_TABLE, migrations } from './schema';

/**
 * The shared saga log (`SAGAMESH_STORE=postgres://…`) for several sagamesh instances.
 *
 * Each saga is owned by the instance that started or claimed it, until `lease_expires_at`; owners
 * renew their leases, and an instance claims unfinished sagas whose lease expired. Lease times are
 * the database's clock, so instances' clocks may disagree. Every append is fenced: it writes only
 * while this instance is still the owner, so an instance that lost a saga (paused, partitioned)
 * cannot record — and therefore cannot send — anything more for it.
 *
 * Appends are group-committed: the records appended while a batch is being written (or in the
 * same tick) form the next batch, written by one statement in one transaction, and each append
 * resolves only after that commit. Fencing stays per saga: a saga that lost its lease has its
 * appends rejected with LEASE_LOST, and the batch's other records are committed. What one saga
 * appends fails only its own appends: records are serialised before they are queued, a second
 * start is skipped by the statement itself, and a batch the server refuses for its data (a
 * constraint) is written again saga by saga.
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

/** PostgreSQL refused the data (SQLSTATE class 22 data exception, 23 constraint violation). */
function isDataError(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  return /^2[23]/.test(code);
}

function storeError(err: unknown): SagameshError {
  if (err instanceof SagameshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SagameshError(ERRORS.STORE_UNAVAILABLE, `postgres: ${message}`, [], { cause: err });
}

interface PendingAppend {
  readonly record: SagaRecord;
  /** The record as JSON, serialised in append(). */
  readonly data: string;
  readonly resolve: (record: SagaRecord) => void;
  readonly reject: (err: unknown) => void;
}

/** A saga's row as one batch leaves it: its status, time and end after the batch's records. */
interface SagaRow {
  id: string;
  definition: string | null;
  version: string | null;
  status: SagaStatus | null;
  at: number;
  finished_at: number | null;
}

interface EventRow {
  readonly saga_id: string;
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly data: string;
}

/**
 * What one batch writes: each saga's row once — inserted for the sagas it starts, updated for the
 * others — and every record. Several records of one saga fold into one row change, in seq order.
 */
function planBatch(batch: readonly PendingAppend[]): {
  readonly starts: readonly SagaRow[];
  readonly touches: readonly SagaRow[];
  readonly events: readonly EventRow[];
} {
  const starts = new Map<string, SagaRow>();
  const touches = new Map<string, SagaRow>();
  const events: EventRow[] = [];
  for (const { record, data } of batch) {
    const id = record.sagaId;
    let row = starts.get(id) ?? touches.get(id);
    if (!row) {
      row = { id, definition: null, version: null, status: null, at: record.at, finished_at: null };
      if (record.type === 'saga.started') {
        row.definition = record.definition;
        row.version = record.version;
        starts.set(id, row);
      } else {
        touches.set(id, row);
      }
    }
    const status = statusAfter(record);
    if (status) row.status = status;
    if (status && isFinal(status)) row.finished_at = record.at;
    row.at = record.at;
    events.push({
      saga_id: id,
      seq: record.seq,
      at: record.at,
      type: record.type,
      data,
    });
  }
  return { starts: [...starts.values()], touches: [...touches.values()], events };
}

/**
 * One batch of appends as one statement, hence one transaction. $1 is this instance, $2 the lease
 * TTL, $3–$5 the batch's plan (planBatch) as JSON. Started sagas are inserted with this instance
 * as owner; the others are fenced: their row is updated, and their records written, only where
 * this instance still owns them — the row lock makes that check hold until the commit. Returns
 * the saga of every record written: a saga missing from it lost its lease (or, for a start,
 * already existed), and no record of it was written.
 */
const APPEND_BATCH = `
  WITH started AS (
    INSERT INTO sagas (id, definition, version, status, started_at, updated_at, finished_at, owner, lease_expires_at)
    SELECT s.id, s.definition, s.version, s.status, s.at, s.at, s.finished_at, $1, ${NOW_MS} + $2
    FROM json_to_recordset($3::json)
      AS s(id TEXT, definition TEXT, version TEXT, status TEXT, at BIGINT, finished_at BIGINT)
    ON CONFLICT (id) DO NOTHING
    RETURNING id),
  touched AS (
    UPDATE sagas SET status = COALESCE(t.status, sagas.status), updated_at = t.at,
      finished_at = COALESCE(t.finished_at, sagas.finished_at)
    FROM json_to_recordset($4::json) AS t(id TEXT, status TEXT, at BIGINT, finished_at BIGINT)
    WHERE sagas.id = t.id AND sagas.owner = $1
    RETURNING sagas.id)
  INSERT INTO saga_events (saga_id, seq, at, type, data)
  SELECT e.saga_id, e.seq, e.at, e.type, e.data
  FROM json_to_recordset($5::json) AS e(saga_id TEXT, seq INTEGER, at BIGINT, type TEXT, data TEXT)
  WHERE e.saga_id IN (SELECT id FROM started UNION ALL SELECT id FROM touched)
  RETURNING saga_id`;

export class PostgresSagaLog implements SagaLog {
  private readonly seqs = new Map<string, number>();
  /** In-flight reads of a saga's last seq, shared by concurrent first appends after a takeover. */
  private readonly seeds = new Map<string, Promise<number>>();
  /** Appends waiting for the next batch. */
  private pending: PendingAppend[] = [];
  /** The loop writing batches, while there is one. */
  private writer: Promise<void> | undefined;
  private closed = false;

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

  /**
   * Queues the record for the next batch; resolves once the batch that holds it has committed.
   * The record's seq is taken as it is queued, so a saga's records enter the queue in seq order.
   */
  async append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    if (event.type === 'saga.started') this.seqs.set(sagaId, 0);
    else if (!this.seqs.has(sagaId)) await this.seedSeq(sagaId);
    if (this.closed) throw new SagameshError(ERRORS.STORE_UNAVAILABLE, 'the saga log is closed');
    const seq = (this.seqs.get(sagaId) ?? 0) + 1;
    this.seqs.set(sagaId, seq);
    const record = sagaRecord(sagaId, seq, this.clock.now(), event);
    let data: string;
    try {
      data = serialiseRecord(record);
    } catch (err) {
      this.seqs.set(sagaId, seq - 1);
      throw err;
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ record, data, resolve, reject });
      this.writer ??= this.writeBatches();
    });
  }

  /**
   * Group commit: writes the queued records in batches, one batch at a time. A batch takes every
   * record queued while the previous one was being written, plus those appended in the same tick;
   * waiting one tick after a commit lets the sagas it released queue their next records first.
   */
  private async writeBatches(): Promise<void> {
    try {
      for (;;) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.pending.length === 0) return;
        await this.writeBatch(this.pending.splice(0));
      }
    } finally {
      this.writer = undefined;
    }
  }

  /**
   * Writes one batch in one statement (one transaction) and settles each of its appends. A batch
   * refused for its data (SQLSTATE class 22 or 23: a saga's records clash with the journal, e.g.
   * two instances given one SAGAMESH_INSTANCE_ID) is written again one saga at a time, so only
   * the saga at fault fails; any other failure is the store's and fails the whole batch.
   */
  private async writeBatch(batch: readonly PendingAppend[]): Promise<void> {
    let plan: ReturnType<typeof planBatch>;
    let written: Set<string>;
    try {
      plan = planBatch(batch);
      const r = await this.pool.query<{ saga_id: string }>(APPEND_BATCH, [
        this.options.instanceId,
        this.options.leaseTtlMs,
        JSON.stringify(plan.starts),
        JSON.stringify(plan.touches),
        JSON.stringify(plan.events),
      ]);
      written = new Set(r.rows.map((row) => row.saga_id));
    } catch (err) {
      const sagas = bySaga(batch);
      if (sagas.size > 1 && isDataError(err)) {
        for (const appends of sagas.values()) await this.writeBatch(appends);
        return;
      }
      const e = storeError(err);
      for (const p of batch) p.reject(e);
      for (const id of sagas.keys()) this.seqs.delete(id);
      return;
    }
    const startedHere = new Set(plan.starts.map((s) => s.id));
    for (const { record, resolve, reject } of batch) {
      const id = record.sagaId;
      if (written.has(id)) {
        if (record.type === 'saga.finished') this.seqs.delete(id);
        resolve(record);
      } else if (startedHere.has(id)) {
        reject(duplicateStart(id));
      } else {
        this.seqs.delete(id);
        reject(new SagameshError(ERRORS.LEASE_LOST, `saga ${id}`));
      }
    }
  }

  /** Learns the last seq of a saga this instance has not written to yet (after a claim). */
  private async seedSeq(sagaId: string): Promise<void> {
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

  /** Lets the queued appends commit, then closes the pool; later appends are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await this.writer;
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
