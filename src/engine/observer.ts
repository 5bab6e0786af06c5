import type { CallKind } from '../runtime/journal';

/**
 * What the data path reports as it runs: the seam metrics (and anything else that watches) hook
 * into, so the runner, the processor and the stream loop never know about Prometheus. Every method
 * must be cheap and must not throw.
 */
export interface Observer {
  streamOpened(): void;
  streamClosed(reason: 'ended' | 'cancelled' | 'error'): void;
  /** A request matched a saga but was refused before any step ran (bad input, draining, …). */
  sagaRejected(definition: string, code: string): void;
  sagaStarted(definition: string): void;
  sagaFinished(definition: string, status: string, durationMs: number): void;
  callCompleted(event: {
    readonly definition: string;
    readonly step: string;
    readonly kind: CallKind;
    readonly attempt: number;
    /** success | rejected | retryable, or aborted when the machine timed the call out. */
    readonly outcome: string;
    readonly durationMs: number;
  }): void;
  /**
   * The definitions watcher tried a new set: `applied` replaced the set in force, `unchanged` found
   * the same versions, `rejected` kept the last good set; `codes` are the rejected set's problems.
   */
  definitionsReloaded(result: 'applied' | 'unchanged' | 'rejected', codes: readonly string[]): void;
}

export const NOOP_OBSERVER: Observer = Object.freeze({
  streamOpened: () => undefined,
  streamClosed: () => undefined,
  sagaRejected: () => undefined,
  sagaStarted: () => undefined,
  sagaFinished: () => undefined,
  callCompleted: () => undefined,
  definitionsReloaded: () => undefined,
});
