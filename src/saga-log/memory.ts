import type { Clock } from '../clock';
import { toSagameshError } from '../errors';
import type {
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
import { duplicateStart, isFinal, sagaRecord, serialiseRecord, statusAfter } from '../runtime/journal';

interface Entry {
  summary: SagaSummary;
  /** The journal; emptied once the saga is final and among the older finished ones. */
  records: SagaRecord[];
  /** Records ever appended: sequence numbers go on after the journal was dropped. */
  seq: number;
}

interface KeyEntry {
  sagaId: string;
  requestHash: string;
  createdAt: number;
  answer?: StoredAnswer;
}

export interface MemorySagaLogOptions {
  /**
   * How many finished sagas keep their whole journal (for `GET /sagas/{id}` and the UI); older
   * finished sagas keep only their summary. Default 1000.
   */
  readonly finishedJournals?: number;
}

/** Default of `finishedJournals`. */
export const FINISHED_JOURNALS = 1000;

/**
 * The in-memory saga log: `SAGAMESH_STORE=memory`, for tests and for measuring what durability
 * costs. Same contract as the durable stores, but everything is gone when the process exits.
 *
 * Unlike the durable stores it does not keep every journal until retention: nothing can recover
 * from it, so a finished saga's records are only kept for the operator's view, and only for the
 * most recent `finishedJournals` finished sagas. Older finished sagas keep their summary (list,
 * counts, status) and their client's stored answer until retention; `history()` is empty for them,
 * as for a pruned saga. Stuck sagas keep their journal: an operator's retry rebuilds from it.
 * This keeps the heap flat under a long run instead of growing with every saga finished.
 */
export class MemorySagaLog implements SagaLog {
  private readonly sagas = new Map<string, Entry>();
  private readonly definitions = new Map<string, StoredDefinition>();
  private readonly keys = new Map<string, KeyEntry>();
  /** Key ids (definition + key) by saga, so saveAnswer need not scan every key. */
  private readonly keysBySaga = new Map<string, Set<string>>();
  /** Finished sagas that still hold their journal, oldest first (a Set keeps insertion order). */
  private readonly journaled = new Set<string>();
  private readonly finishedJournals: number;

  constructor(
    private readonly clock: Clock,
    options: MemorySagaLogOptions = {},
  ) {
    this.finishedJournals = Math.max(0, options.finishedJournals ?? FINISHED_JOURNALS);
  }

  append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    try {
      return Promise.resolve(this.appendNow(sagaId, event));
    } catch (err) {
      return Promise.reject(toSagameshError(err));
    }
  }

  /** Reserves the key and appends the start at once: nothing else runs in between. */
  start(sagaId: string, event: StartedEvent, key?: KeyRequest): Promise<StartOutcome> {
    const id = key && `${key.definition}\u0000${key.key}`;
    const existing = id === undefined ? undefined : this.keys.get(id);
    if (key && existing && existing.createdAt >= key.expiredBefore) {
      const { sagaId: holder, requestHash, answer } = existing;
      return Promise.resolve({ held: { sagaId: holder, requestHash, ...(answer ? { answer } : {}) } });
    }
    let started: SagaRecord;
    try {
      started = this.appendNow(sagaId, event);
    } catch (err) {
      return Promise.reject(toSagameshError(err));
    }
    if (key && id !== undefined) {
      if (existing) this.unindexKey(existing.sagaId, id);
      this.keys.set(id, { sagaId, requestHash: key.requestHash, createdAt: this.clock.now() });
      let ids = this.keysBySaga.get(sagaId);
      if (!ids) this.keysBySaga.set(sagaId, (ids = new Set()));
      ids.add(id);
    }
    return Promise.resolve({ started });
  }

  finish(sagaId: string, event: FinishedEvent, answer?: StoredAnswer): Promise<SagaRecord> {
    try {
      const record = this.appendNow(sagaId, event);
      if (answer) this.storeAnswer(sagaId, answer);
      return Promise.resolve(record);
    } catch (err) {
      return Promise.reject(toSagameshError(err));
    }
  }

  /** Appends at once; throws what append rejects with. */
  private appendNow(sagaId: string, event: SagaEvent): SagaRecord {
    const at = this.clock.now();
    let entry = this.sagas.get(sagaId);
    if (entry && event.type === 'saga.started') throw duplicateStart(sagaId);
    const record = sagaRecord(sagaId, (entry?.seq ?? 0) + 1, at, event);
    // Kept as an object, but serialised all the same: a record fails here as in the durable stores.
    serialiseRecord(record);
    if (!entry) {
      const started = event.type === 'saga.started' ? event : undefined;
      entry = {
        summary: {
          sagaId,
          definition: started?.definition ?? '',
          version: started?.version ?? '',
          status: 'running',
          startedAt: at,
          updatedAt: at,
        },
        records: [],
        seq: 0,
      };
      this.sagas.set(sagaId, entry);
    }
    entry.seq = record.seq;
    entry.records.push(record);
    const status = statusAfter(event);
    entry.summary = { ...entry.summary, updatedAt: at, ...(status ? { status } : {}) };
    if (status !== undefined) this.finishedOrNot(sagaId, status);
    return record;
  }

  /**
   * A saga that became final (and is not stuck) joins the finished sagas whose journal is kept;
   * past `finishedJournals` of them, the oldest one's journal is dropped. A saga that runs again
   * (an operator's retry of a stuck saga) leaves that queue.
   */
  private finishedOrNot(sagaId: string, status: SagaStatus): void {
    this.journaled.delete(sagaId);
    if (!isFinal(status) || status === 'stuck') return;
    this.journaled.add(sagaId);
    while (this.journaled.size > this.finishedJournals) {
      const oldest = this.journaled.values().next().value as string;
      this.journaled.delete(oldest);
      const entry = this.sagas.get(oldest);
      if (entry) entry.records = [];
    }
  }

  history(sagaId: string): Promise<readonly SagaRecord[]> {
    return Promise.resolve([...(this.sagas.get(sagaId)?.records ?? [])]);
  }

  summary(sagaId: string): Promise<SagaSummary | undefined> {
    return Promise.resolve(this.sagas.get(sagaId)?.summary);
  }

  list(opts: ListOptions = {}): Promise<readonly SagaSummary[]> {
    const limit = Math.min(opts.limit ?? 100, 1000);
    const out = [...this.sagas.values()]
      .map((e) => e.summary)
      .filter(
        (s) =>
          (!opts.status || s.status === opts.status) &&
          (!opts.definition || s.definition === opts.definition) &&
          (opts.since === undefined || s.startedAt >= opts.since) &&
          (opts.after === undefined ||
            s.startedAt < opts.after.startedAt ||
            (s.startedAt === opts.after.startedAt && s.sagaId < opts.after.sagaId)),
      )
      .sort((a, b) => b.startedAt - a.startedAt || (a.sagaId < b.sagaId ? 1 : a.sagaId > b.sagaId ? -1 : 0));
    return Promise.resolve(out.slice(0, limit));
  }

  saveDefinition(definition: StoredDefinition): Promise<void> {
    if (!this.definitions.has(definition.version)) this.definitions.set(definition.version, definition);
    return Promise.resolve();
  }

  loadDefinition(version: string): Promise<StoredDefinition | undefined> {
    return Promise.resolve(this.definitions.get(version));
  }

  /** Nothing survives a restart here, so there is never anything to resume. */
  claimUnfinished(): Promise<readonly string[]> {
    return Promise.resolve([]);
  }

  renewLeases(): Promise<readonly string[]> {
    return Promise.resolve([]);
  }

  saveAnswer(sagaId: string, answer: StoredAnswer): Promise<void> {
    this.storeAnswer(sagaId, answer);
    return Promise.resolve();
  }

  private storeAnswer(sagaId: string, answer: StoredAnswer): void {
    for (const id of this.keysBySaga.get(sagaId) ?? []) {
      const entry = this.keys.get(id);
      if (entry?.sagaId === sagaId) entry.answer = answer;
    }
  }

  private unindexKey(sagaId: string, id: string): void {
    const ids = this.keysBySaga.get(sagaId);
    ids?.delete(id);
    if (ids?.size === 0) this.keysBySaga.delete(sagaId);
  }

  prune(cutoffs: PruneCutoffs): Promise<{ sagas: number; keys: number }> {
    let sagas = 0;
    let keys = 0;
    for (const [id, e] of this.sagas) {
      // Stuck sagas wait for an operator: never pruned (as in the durable stores).
      if (
        isFinal(e.summary.status) &&
        e.summary.status !== 'stuck' &&
        e.summary.updatedAt < cutoffs.sagasFinishedBefore
      ) {
        this.sagas.delete(id);
        this.journaled.delete(id);
        sagas += 1;
        // A key never outlives its saga.
        for (const keyId of this.keysBySaga.get(id) ?? []) {
          if (this.keys.get(keyId)?.sagaId === id && this.keys.delete(keyId)) keys += 1;
        }
        this.keysBySaga.delete(id);
      }
    }
    for (const [id, k] of this.keys) {
      if (k.createdAt < cutoffs.keysCreatedBefore) {
        this.keys.delete(id);
        this.unindexKey(k.sagaId, id);
        keys += 1;
      }
    }
    return Promise.resolve({ sagas, keys });
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
