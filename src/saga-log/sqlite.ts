import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../clock';
import { ERRORS, SagameshError, toSagameshError } from '../errors';
import { bySaga } from './batches';
import { parseRecord, toSummary } from './rows';
import type {
  KeyHolder,
  KeyRequest,
  ListOptions,
  PruneCutoffs,
  SagaEvent,
  SagaLog,
  SagaRecord,
  SagaStatus,
  SagaSummary,
  FinishedEvent,
  StartedEvent,
  StartOutcome,
  StoredAnswer,
  StoredDefinition,
} from '../runtime/journal';
import {
  duplicateStart,
  isFinal,
  sagaRecord,
  serialiseRecord,
  reopens,
  statusAfter,
} from '../runtime/journal';
import { MIGRATIONS_TABLE, migrations } from './schema';

/**
 * The embedded saga log (`SAGAMESH_STORE=sqlite:<path>`, the default): better-sqlite3 in WAL mode.
 *
 * Appends are group-committed: every append made in the same tick joins one transaction, so one
 * fsync covers many sagas' records, and each append resolves only after that commit. Within it,
 * each saga's records are written under a savepoint of their own, and records are serialised
 * before they are queued: what one saga appends can fail only that saga's appends. The database
 * is opened in exclusive locking mode, so a second sagamesh on the same file fails at start
 * instead of both resuming the same sagas.
 */
export interface SqliteOptions {
  readonly file: string;
  /** `full` (default): durable across power loss; `normal`: across process crashes only. */
  readonly synchronous?: 'full' | 'normal';
}

interface PendingAppend {
  readonly record: SagaRecord;
  /** The record as JSON, serialised in append(). */
  readonly data: string;
  readonly status: SagaStatus | undefined;
  /** saga.started: the Idempotency-Key to reserve with it. */
  readonly key?: KeyRequest | undefined;
  /** saga.finished: the answer for the saga's keys, as JSON. */
  readonly answer?: string | undefined;
  readonly resolve: (outcome: Written) => void;
  readonly reject: (err: unknown) => void;
}

/** What became of a queued record: written, or (a start) not, because its key is held. */
type Written = { readonly record: SagaRecord } | { readonly held: KeyHolder };

/** Thrown inside a saga's savepoint when its key is held: nothing of the start may be written. */
class KeyHeld extends Error {
  constructor(readonly holder: KeyHolder) {
    super(`the Idempotency-Key is held by saga ${holder.sagaId}`);
  }
}

function sqliteCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
}

/** Maps an SQLite failure to the registry: garbage or a newer schema is corrupt, the rest unavailable. */
function storeError(err: unknown, file: string): SagameshError {
  if (err instanceof SagameshError) return err;
  const code = sqliteCode(err);
  const message = err instanceof Error ? err.message : String(err);
  const spec =
    code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' ? ERRORS.STORE_CORRUPT : ERRORS.STORE_UNAVAILABLE;
  return new SagameshError(spec, `${file}: ${message}`, [], { cause: err });
}

/**
 * `mkdir -p`, one level at a time. Not `fs.mkdirSync(dir, { recursive: true })`: under /proc (and
 * other pseudo file systems) that spins forever instead of failing (`sqlite:/proc/nope/x.db`).
 */
function makeDirectory(dir: string): void {
  if (fs.existsSync(dir)) return;
  const parent = path.dirname(dir);
  if (parent !== dir) makeDirectory(parent);
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) throw err;
  }
}

export class SqliteSagaLog implements SagaLog {
  private readonly db: Database.Database;
  private readonly seqs = new Map<string, number>();
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly stmt: ReturnType<SqliteSagaLog['prepare']>;
  /** Writes one saga's records of a batch; nested in the batch's transaction, so under a savepoint. */
  private readonly writeSaga: Database.Transaction<(appends: readonly PendingAppend[]) => void>;

  /** Opens (creating it and its directory if needed) and migrates; throws coded errors. */
  static open(options: SqliteOptions, clock: Clock): SqliteSagaLog {
    const file = path.resolve(options.file);
    let db: Database.Database | undefined;
    try {
      makeDirectory(path.dirname(file));
      db = new Database(file, { timeout: 2000 });
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      migrate(db, clock);
      return new SqliteSagaLog(db, clock);
    } catch (err) {
      db?.close();
      const e = storeError(err, file);
      if (sqliteCode(err) === 'SQLITE_BUSY') {
        throw new SagameshError(ERRORS.STORE_UNAVAILABLE, `${file} is in use by another sagamesh instance`);
      }
      throw e;
    }
  }

  private constructor(
    db: Database.Database,
    private readonly clock: Clock,
  ) {
    this.db = db;
    this.stmt = this.prepare();
    this.writeSaga = db.transaction((appends: readonly PendingAppend[]) => {
      for (const p of appends) this.writeRecord(p);
    });
  }

  private prepare() {
    const db = this.db;
    return {
      insertEvent: db.prepare(
        'INSERT INTO saga_events (saga_id, seq, at, type, data) VALUES (?, ?, ?, ?, ?)',
      ),
      insertSaga: db.prepare(
        'INSERT INTO sagas (id, definition, version, status, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
      ),
      touchSaga: db.prepare(
        // An undo re-opens a finished saga: unfinished again, so a restart recovers it.
        'UPDATE sagas SET status = COALESCE(?, status), updated_at = ?, finished_at = CASE WHEN ? THEN NULL ELSE COALESCE(?, finished_at) END WHERE id = ?',
      ),
      maxSeq: db.prepare('SELECT MAX(seq) AS seq FROM saga_events WHERE saga_id = ?'),
      history: db.prepare('SELECT data FROM saga_events WHERE saga_id = ? ORDER BY seq'),
      summary: db.prepare('SELECT * FROM sagas WHERE id = ?'),
      saveDefinition: db.prepare(
        'INSERT INTO definitions (version, name, file, source, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING',
      ),
      loadDefinition: db.prepare('SELECT version, name, file, source FROM definitions WHERE version = ?'),
      unfinished: db.prepare('SELECT id FROM sagas WHERE finished_at IS NULL ORDER BY started_at'),
      releaseOrphanKeys: db.prepare(
        'DELETE FROM idempotency_keys WHERE answer IS NULL AND NOT EXISTS (SELECT 1 FROM sagas WHERE sagas.id = idempotency_keys.saga_id)',
      ),
      reserveKey: db.prepare(
        `INSERT INTO idempotency_keys (definition, key, request_hash, saga_id, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (definition, key) DO UPDATE SET request_hash = excluded.request_hash, saga_id = excluded.saga_id,
           answer = NULL, created_at = excluded.created_at`,
      ),
      getKey: db.prepare(
        'SELECT saga_id, request_hash, answer, created_at FROM idempotency_keys WHERE definition = ? AND key = ?',
      ),
      saveAnswer: db.prepare('UPDATE idempotency_keys SET answer = ? WHERE saga_id = ?'),
      pruneSagaKeys: db.prepare(
        'DELETE FROM idempotency_keys WHERE saga_id IN (SELECT id FROM sagas WHERE finished_at IS NOT NULL AND finished_at < ?)',
      ),
      pruneEvents: db.prepare(
        'DELETE FROM saga_events WHERE saga_id IN (SELECT id FROM sagas WHERE finished_at IS NOT NULL AND finished_at < ?)',
      ),
      pruneSagas: db.prepare('DELETE FROM sagas WHERE finished_at IS NOT NULL AND finished_at < ?'),
      pruneKeys: db.prepare('DELETE FROM idempotency_keys WHERE created_at < ?'),
    };
  }

  append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    return this.enqueue(sagaId, event).then(recordOf);
  }

  start(sagaId: string, event: StartedEvent, key?: KeyRequest): Promise<StartOutcome> {
    return this.enqueue(sagaId, event, key).then((w) => ('held' in w ? w : { started: w.record }));
  }

  finish(sagaId: string, event: FinishedEvent, answer?: StoredAnswer): Promise<SagaRecord> {
    return this.enqueue(sagaId, event, undefined, answer).then(recordOf);
  }

  /** Serialises the record (and answer) and queues it for the next group commit. */
  private enqueue(
    sagaId: string,
    event: SagaEvent,
    key?: KeyRequest,
    answer?: StoredAnswer,
  ): Promise<Written> {
    if (this.closed)
      return Promise.reject(new SagameshError(ERRORS.STORE_UNAVAILABLE, 'the saga log is closed'));
    let seq: number;
    try {
      seq = this.nextSeq(sagaId);
    } catch (err) {
      return Promise.reject(storeError(err, 'saga log'));
    }
    const record = sagaRecord(sagaId, seq, this.clock.now(), event);
    let data: string;
    try {
      data = serialiseRecord(record);
    } catch (err) {
      this.seqs.set(sagaId, seq - 1);
      return Promise.reject(toSagameshError(err));
    }
    if (event.type === 'saga.finished') this.seqs.delete(sagaId);
    return new Promise((resolve, reject) => {
      this.pending.push({
        record,
        data,
        status: statusAfter(event),
        key,
        // An answer is strings and a number: it always serialises.
        answer: answer && JSON.stringify(answer),
        resolve,
        reject,
      });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private nextSeq(sagaId: string): number {
    let seq = this.seqs.get(sagaId);
    if (seq === undefined) {
      const row = this.stmt.maxSeq.get(sagaId) as { seq: number | null } | undefined;
      seq = row?.seq ?? 0;
    }
    seq += 1;
    this.seqs.set(sagaId, seq);
    return seq;
  }

  /**
   * Commits the queued appends in one transaction. A saga whose records fail (a constraint, a
   * second start) has them rolled back to its savepoint and rejected; the others commit. Only a
   * failed transaction (the disk, the file) fails every append of the batch.
   */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const failed = new Map<string, SagameshError>();
    const held = new Map<string, KeyHolder>();
    try {
      this.db.transaction(() => {
        for (const [sagaId, appends] of bySaga(batch)) {
          try {
            this.writeSaga(appends);
          } catch (err) {
            if (err instanceof KeyHeld) held.set(sagaId, err.holder);
            // SQLite ends the whole transaction on I/O errors, a full disk, …: then nothing commits.
            else if (!this.db.inTransaction) throw err;
            else failed.set(sagaId, storeError(err, 'saga log'));
          }
        }
      })();
    } catch (err) {
      const e = storeError(err, 'saga log');
      for (const p of batch) p.reject(e);
      this.seqs.clear();
      return;
    }
    for (const p of batch) {
      const e = failed.get(p.record.sagaId);
      const holder = held.get(p.record.sagaId);
      if (e) p.reject(e);
      else if (holder) p.resolve({ held: holder });
      else p.resolve({ record: p.record });
    }
    // Their records were not written: the next append reads the saga's last seq again.
    for (const sagaId of [...failed.keys(), ...held.keys()]) this.seqs.delete(sagaId);
  }

  private writeRecord({ record, data, status, key, answer }: PendingAppend): void {
    if (record.type === 'saga.started') {
      if (key) this.reserveKey(record.sagaId, key, record.at);
      const inserted = this.stmt.insertSaga.run(
        record.sagaId,
        record.definition,
        record.version,
        'running',
        record.at,
        record.at,
      );
      if (inserted.changes === 0) throw duplicateStart(record.sagaId);
    }
    this.stmt.insertEvent.run(record.sagaId, record.seq, record.at, record.type, data);
    if (answer !== undefined) this.stmt.saveAnswer.run(answer, record.sagaId);
    const finishedAt = status && isFinal(status) ? record.at : null;
    if (record.type !== 'saga.started')
      this.stmt.touchSaga.run(status ?? null, record.at, reopens(record) ? 1 : 0, finishedAt, record.sagaId);
  }

  /** Within the start's savepoint: takes the key for the saga, or throws KeyHeld. */
  private reserveKey(sagaId: string, k: KeyRequest, at: number): void {
    const row = this.stmt.getKey.get(k.definition, k.key) as
      { saga_id: string; request_hash: string; answer: string | null; created_at: number } | undefined;
    if (row && row.created_at >= k.expiredBefore) {
      throw new KeyHeld({
        sagaId: row.saga_id,
        requestHash: row.request_hash,
        ...(row.answer ? { answer: JSON.parse(row.answer) as StoredAnswer } : {}),
      });
    }
    this.stmt.reserveKey.run(k.definition, k.key, k.requestHash, sagaId, at);
  }

  history(sagaId: string): Promise<readonly SagaRecord[]> {
    return this.read(() =>
      (this.stmt.history.all(sagaId) as { data: string }[]).map((r) => parseRecord(r.data)),
    );
  }

  summary(sagaId: string): Promise<SagaSummary | undefined> {
    return this.read(() => {
      const row = this.stmt.summary.get(sagaId);
      return row ? toSummary(row) : undefined;
    });
  }

  list(opts: ListOptions = {}): Promise<readonly SagaSummary[]> {
    return this.read(() => {
      const where: string[] = [];
      const args: (string | number)[] = [];
      const filter = (sql: string, value: string | number | undefined): void => {
        if (value === undefined || value === '') return;
        where.push(sql);
        args.push(value);
      };
      filter('status = ?', opts.status);
      filter('definition = ?', opts.definition);
      filter('started_at >= ?', opts.since);
      if (opts.after) {
        where.push('(started_at < ? OR (started_at = ? AND id < ?))');
        args.push(opts.after.startedAt, opts.after.startedAt, opts.after.sagaId);
      }
      const sql = `SELECT * FROM sagas ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id DESC LIMIT ?`;
      args.push(Math.min(opts.limit ?? 100, 1000));
      return this.db
        .prepare(sql)
        .all(...args)
        .map((row) => toSummary(row));
    });
  }

  saveDefinition(d: StoredDefinition): Promise<void> {
    return this.write(
      () => void this.stmt.saveDefinition.run(d.version, d.name, d.file, d.source, this.clock.now()),
    );
  }

  loadDefinition(version: string): Promise<StoredDefinition | undefined> {
    return this.read(() => this.stmt.loadDefinition.get(version) as StoredDefinition | undefined);
  }

  /**
   * At boot: every unfinished saga. Alone on its file, this instance also releases the keys whose
   * saga never started (only an older sagamesh could leave one): a retry runs afresh.
   */
  claimUnfinished(): Promise<readonly string[]> {
    return this.write(() => {
      this.stmt.releaseOrphanKeys.run();
      return (this.stmt.unfinished.all() as { id: string }[]).map((r) => r.id);
    });
  }

  renewLeases(): Promise<readonly string[]> {
    return Promise.resolve([]);
  }

  saveAnswer(sagaId: string, answer: StoredAnswer): Promise<void> {
    return this.write(() => void this.stmt.saveAnswer.run(JSON.stringify(answer), sagaId));
  }

  prune(cutoffs: PruneCutoffs): Promise<{ sagas: number; keys: number }> {
    return this.write(() =>
      this.db.transaction(() => {
        const sagaKeys = this.stmt.pruneSagaKeys.run(cutoffs.sagasFinishedBefore).changes;
        this.stmt.pruneEvents.run(cutoffs.sagasFinishedBefore);
        const sagas = this.stmt.pruneSagas.run(cutoffs.sagasFinishedBefore).changes;
        const keys = sagaKeys + this.stmt.pruneKeys.run(cutoffs.keysCreatedBefore).changes;
        return { sagas, keys };
      })(),
    );
  }

  ping(): Promise<void> {
    return this.read(() => void this.db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
    return Promise.resolve();
  }

  private read<T>(fn: () => T): Promise<T> {
    return this.write(fn);
  }

  private write<T>(fn: () => T): Promise<T> {
    if (this.closed)
      return Promise.reject(new SagameshError(ERRORS.STORE_UNAVAILABLE, 'the saga log is closed'));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(storeError(err, 'saga log'));
    }
  }
}

function migrate(db: Database.Database, clock: Clock): void {
  db.exec(MIGRATIONS_TABLE);
  const row = db.prepare('SELECT MAX(version) AS v FROM sagamesh_migrations').get() as { v: number | null };
  const current = row.v ?? 0;
  const all = migrations('sqlite');
  if (current > all.length) {
    throw new SagameshError(
      ERRORS.STORE_CORRUPT,
      `schema version ${current} is newer than this sagamesh (${all.length})`,
    );
  }
  all.slice(current).forEach((statements, i) => {
    db.transaction(() => {
      for (const sql of statements) db.exec(sql);
      db.prepare('INSERT INTO sagamesh_migrations (version, applied_at) VALUES (?, ?)').run(
        current + i + 1,
        clock.now(),
      );
    })();
  });
}

function recordOf(written: Written): SagaRecord {
  if ('held' in written) throw new SagameshError(ERRORS.INTERNAL, 'a record without a key was held');
  return written.record;
}
