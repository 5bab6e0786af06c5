import type { KeyHolder, KeyRequest, SagaEvent, SagaRecord } from '../runtime/journal';
import { sagaRecord, serialiseRecord } from '../runtime/journal';

/**
 * What the group-committing stores (SQLite, PostgreSQL, etcd) share: a batch is written per saga
 * where a saga's records must stand or fall together, so one saga's failure stays that saga's.
 */

/** A batch's appends by saga, each saga's in the order they were made. */
export function bySaga<T extends { readonly record: SagaRecord }>(batch: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const p of batch) {
    const group = groups.get(p.record.sagaId);
    if (group) group.push(p);
    else groups.set(p.record.sagaId, [p]);
  }
  return groups;
}

/** An append queued for the next batch of a shared store (PostgreSQL, etcd). */
export interface PendingAppend {
  readonly record: SagaRecord;
  /** The record as JSON, serialised in append(). */
  readonly data: string;
  /** saga.started: the Idempotency-Key to reserve with it. */
  readonly key?: KeyRequest | undefined;
  /** saga.finished: the answer for the saga's keys, as JSON. */
  readonly answer?: string | undefined;
  readonly resolve: (outcome: Written) => void;
  readonly reject: (err: unknown) => void;
}

/** What became of a queued record: written, or (a start) not, because its key is held. */
export type Written = { readonly record: SagaRecord } | { readonly held: KeyHolder };

/**
 * One Idempotency-Key per batch: a second start with the same key waits for the next batch, where
 * it finds the first holding it (one statement cannot insert and then update the same key).
 */
export function oneStartPerKey(batch: readonly PendingAppend[]): {
  readonly now: PendingAppend[];
  readonly later: PendingAppend[];
} {
  const seen = new Set<string>();
  const now: PendingAppend[] = [];
  const later: PendingAppend[] = [];
  for (const p of batch) {
    const id = p.key && JSON.stringify([p.key.definition, p.key.key]);
    if (id !== undefined && seen.has(id)) later.push(p);
    else now.push(p);
    if (id !== undefined) seen.add(id);
  }
  return { now, later };
}

/**
 * The saga's next record, as every group-committing store queues it: its seq taken from `seqs`
 * (which must hold the saga's last seq), then serialised at once, so a record that cannot be
 * written fails its own append only. A record that does not serialise gives its seq back.
 */
export function nextRecord(
  seqs: Map<string, number>,
  sagaId: string,
  at: number,
  event: SagaEvent,
): { readonly record: SagaRecord; readonly data: string } {
  const seq = (seqs.get(sagaId) ?? 0) + 1;
  seqs.set(sagaId, seq);
  const record = sagaRecord(sagaId, seq, at, event);
  try {
    return { record, data: serialiseRecord(record) };
  } catch (err) {
    seqs.set(sagaId, seq - 1);
    throw err;
  }
}
