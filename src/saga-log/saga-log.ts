import type { ErrorSpec } from '../errors';

/**
 * The saga log: every transition of every saga, appended before the side effect it allows
 * ("record before acting"). The runner awaits `append` before it dispatches a request, so a store
 * that cannot write stops the saga instead of letting it act unrecorded.
 *
 * This issue ships the in-memory store; durable stores (SQLite, PostgreSQL) implement the same
 * interface.
 */
export type SagaStatus = 'running' | 'succeeded' | 'compensating' | 'compensated' | 'stuck' | 'failed';
export type CallKind = 'action' | 'compensation';

export type SagaEvent =
  | {
      readonly type: 'saga.started';
      readonly definition: string;
      readonly version: string;
      readonly request: { readonly method: string; readonly path: string; readonly body: unknown };
      readonly traceparent?: string;
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
      readonly outcome: string;
      readonly status?: number;
      readonly error?: { readonly code: ErrorSpec['code']; readonly message: string };
    }
  | {
      readonly type: 'saga.compensating';
      readonly failedStep?: string;
      readonly error: { readonly code: string; readonly message: string };
    }
  | { readonly type: 'saga.pivot'; readonly upstreamStatus?: number }
  | { readonly type: 'saga.finished'; readonly status: SagaStatus };

export type SagaRecord = SagaEvent & { readonly sagaId: string; readonly seq: number; readonly at: number };

export interface SagaSummary {
  readonly sagaId: string;
  readonly definition: string;
  readonly status: SagaStatus;
  readonly startedAt: number;
  readonly updatedAt: number;
}

export interface SagaLog {
  /** Durably appends one record; resolves only once it is stored. */
  append(sagaId: string, event: SagaEvent): Promise<SagaRecord>;
  /** Every record of one saga in order; empty when unknown. */
  history(sagaId: string): Promise<readonly SagaRecord[]>;
  /** Recent sagas, newest first. */
  list(opts?: { readonly status?: SagaStatus; readonly limit?: number }): Promise<readonly SagaSummary[]>;
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
