import type { PendingAppend } from './batches';
import type { KeyRequest, SagaStatus } from '../runtime/journal';
import { isFinal, reopens, statusAfter } from '../runtime/journal';

/**
 * What one group commit of the PostgreSQL saga log writes, and the one statement that writes it
 * (postgres.ts queues the appends and settles them).
 */

/** The database's clock, in epoch ms: lease times are on it, so instances' clocks may disagree. */
export const NOW_MS = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`;

/** A saga's row as one batch leaves it: its status, time and end after the batch's records. */
interface SagaRow {
  id: string;
  /** Started with an Idempotency-Key: inserted only if the key could be reserved. */
  keyed: boolean;
  definition: string | null;
  version: string | null;
  status: SagaStatus | null;
  at: number;
  finished_at: number | null;
  /** An undo's start re-opens the finished saga: this instance claims it (see APPEND_BATCH). */
  reopens: boolean;
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
export function planBatch(batch: readonly PendingAppend[]): {
  readonly starts: readonly SagaRow[];
  readonly touches: readonly SagaRow[];
  readonly events: readonly EventRow[];
  readonly keys: readonly KeyRow[];
  readonly answers: readonly { readonly saga_id: string; readonly answer: string }[];
} {
  const starts = new Map<string, SagaRow>();
  const touches = new Map<string, SagaRow>();
  const events: EventRow[] = [];
  const keys: KeyRow[] = [];
  const answers: { saga_id: string; answer: string }[] = [];
  for (const { record, data, key, answer } of batch) {
    const id = record.sagaId;
    if (key) keys.push(keyRow(id, key, record.at));
    if (answer !== undefined) answers.push({ saga_id: id, answer });
    let row = starts.get(id) ?? touches.get(id);
    if (!row) {
      row = {
        id,
        keyed: key !== undefined,
        definition: null,
        version: null,
        status: null,
        at: record.at,
        finished_at: null,
        reopens: false,
      };
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
    if (reopens(record)) {
      row.reopens = true;
      row.finished_at = null;
    }
    row.at = record.at;
    events.push({
      saga_id: id,
      seq: record.seq,
      at: record.at,
      type: record.type,
      data,
    });
  }
  return { starts: [...starts.values()], touches: [...touches.values()], events, keys, answers };
}

interface KeyRow {
  readonly definition: string;
  readonly key: string;
  readonly request_hash: string;
  readonly saga_id: string;
  readonly created_at: number;
  readonly expired_before: number;
}

function keyRow(sagaId: string, k: KeyRequest, at: number): KeyRow {
  const { definition, key, requestHash, expiredBefore } = k;
  return {
    definition,
    key,
    request_hash: requestHash,
    saga_id: sagaId,
    created_at: at,
    expired_before: expiredBefore,
  };
}

/**
 * One batch of appends as one statement, hence one transaction. $1 is this instance, $2 the lease
 * TTL, $3–$5 the batch's plan (planBatch) as JSON, $6 the keys its starts reserve, $7 the answers
 * its ends store, $8 the cutoff of leftover reservations (ORPHAN_KEY_AGE_MS).
 *
 * - A key is reserved for a new saga if it is free, expired, or a leftover (no saga, no answer,
 *   older than the cutoff); a start whose key is held is not inserted, nor are its records.
 * - Started sagas are inserted with this instance as owner; the others are fenced: their row is
 *   updated, and their records written, only where this instance still owns them — the row lock
 *   makes that check hold until the commit.
 * - An undo's start (`reopens`) may touch a finished saga another instance finished: it claims
 *   the saga (owner, a fresh lease) and makes it unfinished, so a takeover recovers it. Once
 *   re-opened, the saga is fenced as any other: a second undo elsewhere finds it unfinished.
 * - A finished saga's answer goes to its keys (not to a key this batch hands to another saga).
 * Returns the saga of every record written: a saga missing from it lost its lease, or (a start)
 * its key is held or it already existed, and no record of it was written.
 */
export const APPEND_BATCH = `
  WITH requested AS (
    SELECT * FROM json_to_recordset($6::json) AS k(definition TEXT, key TEXT, request_hash TEXT,
      saga_id TEXT, created_at BIGINT, expired_before BIGINT)),
  reserved AS (
    INSERT INTO idempotency_keys AS held (definition, key, request_hash, saga_id, created_at)
    SELECT r.definition, r.key, r.request_hash, r.saga_id, r.created_at FROM requested r
    WHERE NOT EXISTS (SELECT 1 FROM sagas WHERE sagas.id = r.saga_id)
    ON CONFLICT (definition, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
      saga_id = EXCLUDED.saga_id, answer = NULL, created_at = EXCLUDED.created_at
    WHERE held.created_at < (SELECT r.expired_before FROM requested r
                             WHERE r.definition = EXCLUDED.definition AND r.key = EXCLUDED.key)
       OR (held.answer IS NULL AND held.created_at < $8
           AND NOT EXISTS (SELECT 1 FROM sagas WHERE sagas.id = held.saga_id))
    RETURNING saga_id),
  started AS (
    INSERT INTO sagas (id, definition, version, status, started_at, updated_at, finished_at, owner, lease_expires_at)
    SELECT s.id, s.definition, s.version, s.status, s.at, s.at, s.finished_at, $1, ${NOW_MS} + $2
    FROM json_to_recordset($3::json)
      AS s(id TEXT, keyed BOOLEAN, definition TEXT, version TEXT, status TEXT, at BIGINT, finished_at BIGINT)
    WHERE NOT s.keyed OR s.id IN (SELECT saga_id FROM reserved)
    ON CONFLICT (id) DO NOTHING
    RETURNING id),
  touched AS (
    UPDATE sagas SET status = COALESCE(t.status, sagas.status), updated_at = t.at,
      finished_at = CASE WHEN t.reopens AND t.finished_at IS NULL THEN NULL
                         ELSE COALESCE(t.finished_at, sagas.finished_at) END,
      owner = $1,
      lease_expires_at = CASE WHEN t.reopens THEN ${NOW_MS} + $2 ELSE sagas.lease_expires_at END
    FROM json_to_recordset($4::json)
      AS t(id TEXT, status TEXT, at BIGINT, finished_at BIGINT, reopens BOOLEAN)
    WHERE sagas.id = t.id
      AND (sagas.owner = $1 OR (t.reopens AND sagas.finished_at IS NOT NULL))
    RETURNING sagas.id),
  answered AS (
    UPDATE idempotency_keys SET answer = a.answer
    FROM json_to_recordset($7::json) AS a(saga_id TEXT, answer TEXT)
    WHERE idempotency_keys.saga_id = a.saga_id AND a.saga_id IN (SELECT id FROM touched)
      AND NOT EXISTS (SELECT 1 FROM requested r
                      WHERE r.definition = idempotency_keys.definition AND r.key = idempotency_keys.key)
    RETURNING 1)
  INSERT INTO saga_events (saga_id, seq, at, type, data)
  SELECT e.saga_id, e.seq, e.at, e.type, e.data
  FROM json_to_recordset($5::json) AS e(saga_id TEXT, seq INTEGER, at BIGINT, type TEXT, data TEXT)
  WHERE e.saga_id IN (SELECT id FROM started UNION ALL SELECT id FROM touched)
  RETURNING saga_id`;
