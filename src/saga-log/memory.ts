import type { Clock } from '../clock';
import type { SagaEvent, SagaLog, SagaRecord, SagaStatus, SagaSummary } from './saga-log';
import { statusAfter } from './saga-log';

interface Entry {
  summary: SagaSummary;
  records: SagaRecord[];
}

/**
 * The in-memory saga log: the default of this release and the store unit tests use. It keeps the
 * same ordering guarantees as a durable store but forgets everything on exit.
 */
export class MemorySagaLog implements SagaLog {
  private readonly sagas = new Map<string, Entry>();

  constructor(private readonly clock: Clock) {}

  append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    const at = this.clock.now();
    let entry = this.sagas.get(sagaId);
    if (!entry) {
      const definition = event.type === 'saga.started' ? event.definition : '';
      entry = {
        summary: { sagaId, definition, status: 'running', startedAt: at, updatedAt: at },
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

  list(opts: { status?: SagaStatus; limit?: number } = {}): Promise<readonly SagaSummary[]> {
    const all = [...this.sagas.values()].map((e) => e.summary);
    const filtered = opts.status ? all.filter((s) => s.status === opts.status) : all;
    filtered.sort((a, b) => b.startedAt - a.startedAt);
    return Promise.resolve(filtered.slice(0, opts.limit ?? 100));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
