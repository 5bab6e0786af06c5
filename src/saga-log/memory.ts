import type { Clock } from '../clock';
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
import { emptyCounts, isFinal, statusAfter } from './saga-log';

interface Entry {
  summary: SagaSummary;
  records: SagaRecord[];
}

interface KeyEntry {
  sagaId: string;
  requestHash: string;
  createdAt: number;
  answer?: StoredAnswer;
}

/**
 * The in-memory saga log: `SAGAMESH_STORE=memory`, for tests and for measuring what durability
 * costs. Same contract as the durable stores, but everything is gone when the process exits.
 */
export class MemorySagaLog implements SagaLog {
  private readonly sagas = new Map<string, Entry>();
  private readonly definitions = new Map<string, StoredDefinition>();
  private readonly keys = new Map<string, KeyEntry>();

  constructor(private readonly clock: Clock) {}

  append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    const at = this.clock.now();
    let entry = this.sagas.get(sagaId);
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
      };
      this.sagas.set(sagaId, entry);
    }
    const record: SagaRecord = { ...event, sagaId, seq: entry.records.length + 1, at };
    entry.records.push(record);
    const status = statusAfter(event);
    entry.summary = { ...entry.summary, updatedAt: at, ...(status ? { status } : {}) };
    return Promise.resolve(record);
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
          (opts.since === undefined || s.startedAt >= opts.since),
      )
      .sort((a, b) => b.startedAt - a.startedAt);
    return Promise.resolve(out.slice(0, limit));
  }

  counts(): Promise<Readonly<Record<SagaStatus, number>>> {
    const counts = emptyCounts();
    for (const e of this.sagas.values()) counts[e.summary.status] += 1;
    return Promise.resolve(counts);
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

  reserveKey(k: {
    definition: string;
    key: string;
    requestHash: string;
    sagaId: string;
    expiredBefore: number;
  }): Promise<KeyReservation> {
    const id = `${k.definition}\u0000${k.key}`;
    const existing = this.keys.get(id);
    if (existing && existing.createdAt >= k.expiredBefore) {
      return Promise.resolve({
        reserved: false,
        sagaId: existing.sagaId,
        requestHash: existing.requestHash,
        ...(existing.answer ? { answer: existing.answer } : {}),
      });
    }
    this.keys.set(id, { sagaId: k.sagaId, requestHash: k.requestHash, createdAt: this.clock.now() });
    return Promise.resolve({ reserved: true });
  }

  releaseKey(definition: string, key: string, sagaId: string): Promise<void> {
    const id = `${definition}\u0000${key}`;
    if (this.keys.get(id)?.sagaId === sagaId) this.keys.delete(id);
    return Promise.resolve();
  }

  saveAnswer(sagaId: string, answer: StoredAnswer): Promise<void> {
    for (const entry of this.keys.values()) if (entry.sagaId === sagaId) entry.answer = answer;
    return Promise.resolve();
  }

  prune(cutoffs: PruneCutoffs): Promise<{ sagas: number; keys: number }> {
    let sagas = 0;
    let keys = 0;
    for (const [id, e] of this.sagas) {
      if (isFinal(e.summary.status) && e.summary.updatedAt < cutoffs.sagasFinishedBefore) {
        this.sagas.delete(id);
        sagas += 1;
      }
    }
    for (const [id, k] of this.keys) {
      if (k.createdAt < cutoffs.keysCreatedBefore) {
        this.keys.delete(id);
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
