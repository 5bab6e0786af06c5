import type { ErrorSpec } from '../errors';
import { ERRORS, SagameshError } from '../errors';
import type { StepResponse, TemplateScope } from '../definition/definition';
import type { CallKind } from './saga-state';

/**
 * The saga log: an append-only journal of every transition of every saga, written before the
 * side effect it allows ("record before acting"). The runner awaits `append` before it dispatches
 * a request, so a store that cannot write stops the saga instead of letting it act unrecorded.
 * Recovery rebuilds a saga's state from its journal (runtime/recovery.ts); docs/saga-log.md says
 * why a journal rather than XState snapshots.
 *
 * Implementations: memory (tests, benchmarks), sqlite (the embedded default, one instance),
 * postgres (several instances; each saga owned by one instance through a lease).
 */
export type SagaStatus = 'running' | 'succeeded' | 'compensating' | 'compensated' | 'stuck';
export const SAGA_STATUSES: readonly SagaStatus[] = [
  'running',
  'succeeded',
  'compensating',
  'compensated',
  'stuck',
];
export const FINAL_STATUSES: readonly SagaStatus[] = ['succeeded', 'compensated', 'stuck'];
/** One definition of a call's kind: the runtime's (saga/saga-state.ts); records carry it. */
export type { CallKind } from './saga-state';

/** The saga and step whose call started a saga (its `x-sagamesh-saga-id`, `x-sagamesh-step`). */
export interface SagaParent {
  readonly sagaId: string;
  readonly step: string;
}

export interface ErrorRecord {
  readonly code: ErrorSpec['code'];
  readonly message: string;
}

export type SagaEvent =
  | {
      readonly type: 'saga.started';
      readonly definition: string;
      readonly version: string;
      readonly request: TemplateScope['request'];
      readonly traceparent?: string;
      /** Set when a parent saga's budget capped the definition's deadline (nested sagas). */
      readonly deadlineMs?: number;
      /** Set when the request was a parent saga's step call: that saga and step (nested sagas). */
      readonly parent?: SagaParent;
    }
  | {
      readonly type: 'call.dispatched';
      readonly step: string;
      readonly kind: CallKind;
      readonly attempt: number;
      readonly replay: boolean;
    }
  | {
      readonly type: 'call.completed';
      readonly step: string;
      readonly kind: CallKind;
      readonly attempt: number;
      readonly replay: boolean;
      readonly outcome: string;
      readonly status?: number;
      /** Kept for successful actions: compensations and answers read step responses. */
      readonly response?: StepResponse;
      readonly error?: ErrorRecord;
    }
  | {
      readonly type: 'saga.compensating';
      readonly failedStep?: string;
      readonly error: ErrorRecord;
      /**
       * An undo of a saga that had succeeded (its definition's `spec.undo`): the one record that
       * re-opens a finished saga — a store lets any instance claim the saga with it.
       */
      readonly undo?: true;
    }
  | {
      readonly type: 'saga.recovered';
      /** restart, lease takeover, operator retry, or the saga's record could not be written (store-error). */
      readonly reason: 'restart' | 'takeover' | 'retry' | 'store-error';
      readonly by: string;
    }
  | { readonly type: 'saga.finished'; readonly status: SagaStatus };

export type SagaRecord = SagaEvent & { readonly sagaId: string; readonly seq: number; readonly at: number };

/**
 * An event as the log stores it. Not `{ ...event, sagaId, … }`: events come in many shapes, and
 * V8's object spread at a site that sees many shapes gave each record a hidden class of its own (a
 * heap snapshot of 10,000 waiting sagas held 50,000 of them); Object.assign onto a fixed head
 * shares them, and is faster. Every store builds its records here.
 */
export function sagaRecord(sagaId: string, seq: number, at: number, event: SagaEvent): SagaRecord {
  return Object.assign({ sagaId, seq, at }, event);
}

/**
 * A record as the journal stores it (JSON). Every store calls this in `append`, before the record
 * joins anything shared: a record that cannot be serialised (nested past the stack, a BigInt, a
 * cycle) fails its own append with RECORD_UNSERIALIZABLE, never the batch it would have joined.
 */
export function serialiseRecord(record: SagaRecord): string {
  try {
    return JSON.stringify(record);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new SagameshError(
      ERRORS.RECORD_UNSERIALIZABLE,
      `${record.type} #${record.seq} of saga ${record.sagaId}: ${message}`,
      [],
      { cause: err },
    );
  }
}

/** A saga.started for a saga the log already has: a caller's bug, refused alone in every store. */
export function duplicateStart(sagaId: string): SagameshError {
  return new SagameshError(ERRORS.INTERNAL, `saga ${sagaId} already exists`);
}

export interface SagaSummary {
  readonly sagaId: string;
  readonly definition: string;
  readonly version: string;
  readonly status: SagaStatus;
  readonly startedAt: number;
  readonly updatedAt: number;
}

export interface ListOptions {
  readonly status?: SagaStatus;
  readonly definition?: string;
  /** Epoch ms: sagas started at or after. */
  readonly since?: number;
  /** Default 100, at most 1000. */
  readonly limit?: number;
  /** Only sagas after this one in the list's order (the last of the previous page). */
  readonly after?: ListCursor;
}

/**
 * A position in a list: sagas are listed newest first by start time, and by id (descending)
 * among sagas started in the same millisecond, so every saga has one place and a page that
 * starts after the previous page's last saga neither repeats nor skips one.
 */
export interface ListCursor {
  readonly startedAt: number;
  readonly sagaId: string;
}

export interface StoredDefinition {
  readonly name: string;
  readonly version: string;
  readonly file: string;
  readonly source: string;
}

/** The answer a client got, kept so a retry with the same Idempotency-Key gets it again. */
export interface StoredAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A client's Idempotency-Key, to be reserved for a saga as it starts. */
export interface KeyRequest {
  readonly definition: string;
  readonly key: string;
  /** sha256 of the request body: the same key with another body is not a retry. */
  readonly requestHash: string;
  /** Keys created before this (epoch ms) count as expired and are taken over. */
  readonly expiredBefore: number;
}

/** The saga a key already belongs to, and the answer stored for it (once it finished). */
export interface KeyHolder {
  readonly sagaId: string;
  readonly requestHash: string;
  readonly answer?: StoredAnswer;
}

export type StartOutcome = { readonly started: SagaRecord } | { readonly held: KeyHolder };

export type StartedEvent = Extract<SagaEvent, { type: 'saga.started' }>;
export type FinishedEvent = Extract<SagaEvent, { type: 'saga.finished' }>;

/**
 * A reservation older than this whose saga never started, and that has no answer, is a leftover:
 * only a sagamesh from before keys were reserved with `saga.started` could leave one (it reserved
 * first, and died before the start). PostgreSQL takes such a key over for a fresh run; the age
 * keeps a reservation of an older instance still between its two writes (a rolling upgrade) safe.
 * SQLite, alone on its file, releases them all at boot.
 */
export const ORPHAN_KEY_AGE_MS = 60_000;

export interface PruneCutoffs {
  readonly sagasFinishedBefore: number;
  readonly keysCreatedBefore: number;
}

export interface SagaLog {
  /**
   * Durably appends one record; resolves only once it is stored. Rejects with STORE_UNAVAILABLE,
   * LEASE_LOST when another instance owns the saga, RECORD_UNSERIALIZABLE when the record cannot
   * be serialised, INTERNAL for a second saga.started. Whatever one saga appends fails only that
   * saga's appends, never those it shares a batch with; a rejected record takes no seq.
   */
  append(sagaId: string, event: SagaEvent): Promise<SagaRecord>;
  /**
   * Starts a saga: appends its `saga.started` (as append does) and, with `key`, reserves the
   * client's Idempotency-Key for it in the same transaction, so no key is ever left without its
   * saga, nor a saga of a retried request without its key. When another saga holds the key (not
   * expired), nothing at all is written and the holder comes back instead.
   */
  start(sagaId: string, event: StartedEvent, key?: KeyRequest): Promise<StartOutcome>;
  /**
   * Appends the saga's `saga.finished` and stores `answer` for every Idempotency-Key of the saga
   * in the same transaction: a key's answer exists exactly when its saga's end does.
   */
  finish(sagaId: string, event: FinishedEvent, answer?: StoredAnswer): Promise<SagaRecord>;
  /** Every record of one saga in order; empty when unknown. */
  history(sagaId: string): Promise<readonly SagaRecord[]>;
  summary(sagaId: string): Promise<SagaSummary | undefined>;
  /** Recent sagas, newest first. */
  list(opts?: ListOptions): Promise<readonly SagaSummary[]>;

  /** Keeps a definition's source under its version (idempotent): recovery runs the exact version. */
  saveDefinition(definition: StoredDefinition): Promise<void>;
  loadDefinition(version: string): Promise<StoredDefinition | undefined>;

  /**
   * The unfinished sagas this instance must now resume, claimed for it: every unfinished saga of
   * an embedded store at boot (which also releases leftover keys, ORPHAN_KEY_AGE_MS); on
   * PostgreSQL those whose owner's lease expired.
   */
  claimUnfinished(): Promise<readonly string[]>;
  /** Keeps this instance's claims alive; returns the ids it no longer owns. No-op without leases. */
  renewLeases(running: readonly string[]): Promise<readonly string[]>;

  /**
   * Stores the answer for every key of a saga that finished without one: a saga finished by a
   * sagamesh from before answers were written with `saga.finished` (see finish).
   */
  saveAnswer(sagaId: string, answer: StoredAnswer): Promise<void>;

  /**
   * Deletes sagas finished before one cutoff, with their Idempotency-Keys (a key never outlives
   * its saga), and Idempotency-Keys created before the other (epoch ms).
   */
  prune(cutoffs: PruneCutoffs): Promise<{ readonly sagas: number; readonly keys: number }>;
  /** Rejects when the store is unreachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The status a saga is in after a record; undefined when the record does not change it. */
export function statusAfter(event: SagaEvent): SagaStatus | undefined {
  switch (event.type) {
    case 'saga.started':
      return 'running';
    case 'saga.compensating':
      return 'compensating';
    case 'saga.finished':
      return event.status;
    default:
      return undefined;
  }
}

/** Whether the record re-opens a finished saga (an undo's start): see the `undo` flag above. */
export function reopens(event: SagaEvent): boolean {
  return event.type === 'saga.compensating' && event.undo === true;
}

export function isFinal(status: SagaStatus): boolean {
  return FINAL_STATUSES.includes(status);
}
