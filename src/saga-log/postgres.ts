import { Pool } from 'pg';
import type { Clock } from '../clock';
import { ERRORS, SagameshError } from '../errors';
import type { PendingAppend, Written } from './batches';
import { bySaga, nextRecord, oneStartPerKey } from './batches';
import { APPEND_BATCH, NOW_MS, planBatch } from './postgres-batch';
import { parseRecord, toSummary } from './rows';
import type {
  KeyHolder,
  KeyRequest,
  ListOptions,
  PruneCutoffs,
  SagaEvent,
  SagaLog,
  SagaRecord,
  SagaSummary,
  FinishedEvent,
  StartedEvent,
  StartOutcome,
  StoredAnswer,
  StoredDefinition,
} from '../runtime/journal';
import { duplicateStart, ORPHAN_KEY_AGE_MS } from '../runtime/journal';
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

/**
 * Longest wait for a connection (TCP, TLS and authentication): an unreachable or silent server
 * fails the boot (or the query) with STORE_UNAVAILABLE after this, never hangs it (docs/saga-log.md).
 */
export const CONNECT_TIMEOUT_MS = 5000;

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
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
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
    return recordOf(await this.enqueue(sagaId, event));
  }

  async start(sagaId: string, event: StartedEvent, key?: KeyRequest): Promise<StartOutcome> {
    const written = await this.enqueue(sagaId, event, key);
    return 'held' in written ? written : { started: written.record };
  }

  async finish(sagaId: string, event: FinishedEvent, answer?: StoredAnswer): Promise<SagaRecord> {
    return recordOf(await this.enqueue(sagaId, event, undefined, answer));
  }

  private async enqueue(
    sagaId: string,
    event: SagaEvent,
    key?: KeyRequest,
    answer?: StoredAnswer,
  ): Promise<Written> {
    if (event.type === 'saga.started') this.seqs.set(sagaId, 0);
    else if (!this.seqs.has(sagaId)) await this.seedSeq(sagaId);
    if (this.closed) throw new SagameshError(ERRORS.STORE_UNAVAILABLE, 'the saga log is closed');
    const { record, data } = nextRecord(this.seqs, sagaId, this.clock.now(), event);
    return new Promise((resolve, reject) => {
      // An answer is strings and a number: it always serialises.
      this.pending.push({ record, data, key, answer: answer && JSON.stringify(answer), resolve, reject });
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
        const { now, later } = oneStartPerKey(this.pending.splice(0));
        this.pending.unshift(...later);
        await this.writeBatch(now);
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
        JSON.stringify(plan.keys),
        JSON.stringify(plan.answers),
        this.clock.now() - ORPHAN_KEY_AGE_MS,
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
    for (const { record, key, resolve, reject } of batch) {
      const id = record.sagaId;
      if (written.has(id)) {
        if (record.type === 'saga.finished') this.seqs.delete(id);
        resolve({ record });
      } else if (startedHere.has(id)) {
        this.seqs.delete(id);
        const holder = key && (await this.holderOf(key, id).catch(() => undefined));
        if (holder) resolve({ held: holder });
        else reject(duplicateStart(id));
      } else {
        this.seqs.delete(id);
        reject(new SagameshError(ERRORS.LEASE_LOST, `saga ${id}`));
      }
    }
  }

  /** Who holds a key a start could not reserve (committed by now; the batch read a snapshot). */
  private async holderOf(k: KeyRequest, sagaId: string): Promise<KeyHolder | undefined> {
    const r = await this.query<{ saga_id: string; request_hash: string; answer: string | null }>(
      'SELECT saga_id, request_hash, answer FROM idempotency_keys WHERE definition = $1 AND key = $2',
      [k.definition, k.key],
    );
    const row = r.rows[0];
    if (!row || row.saga_id === sagaId) return undefined;
    return {
      sagaId: row.saga_id,
      requestHash: row.request_hash,
      ...(row.answer ? { answer: JSON.parse(row.answer) as StoredAnswer } : {}),
    };
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
    if (opts.after) {
      args.push(opts.after.startedAt, opts.after.sagaId);
      const [at, id] = [args.length - 1, args.length];
      // One byte order for ids, whatever the database's collation: the cursor compares as it sorts.
      where.push(`(started_at < $${at} OR (started_at = $${at} AND id COLLATE "C" < $${id}))`);
    }
    args.push(Math.min(opts.limit ?? 100, 1000));
    const r = await this.query(
      `SELECT * FROM sagas ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id COLLATE "C" DESC LIMIT $${args.length}`,
      args,
    );
    return r.rows.map((row) => toSummary(row));
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
      // A key never outlives its saga.
      const sagaKeys = await client.query(
        'DELETE FROM idempotency_keys WHERE saga_id IN (SELECT id FROM sagas WHERE finished_at IS NOT NULL AND finished_at < $1)',
        [cutoffs.sagasFinishedBefore],
      );
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
      return { sagas: sagas.rowCount ?? 0, keys: (sagaKeys.rowCount ?? 0) + (keys.rowCount ?? 0) };
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

function recordOf(written: Written): SagaRecord {
  if ('held' in written) throw new SagameshError(ERRORS.INTERNAL, 'a record without a key was held');
  return written.record;
}
