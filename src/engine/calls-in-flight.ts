import type { CallPort, CallResult } from '../runtime/machine';
import type { CallInput, CallOutput } from '../runtime/saga-state';

/**
 * Sends one call and resolves with its outcome (the runner's `callStep`); `signal` aborts it.
 * A rejection counts as a retryable, in-doubt outcome.
 */
export type CallFn = (input: CallInput, signal: AbortSignal) => Promise<CallOutput>;

/**
 * The calls a runner's sagas have in flight, by saga and call id: the machine's CallPort. The
 * machine says when a call starts and when its state is left; this object owns the abort
 * controllers, so the machine itself keeps no state outside its context. An answer that arrives
 * after its call was cancelled is dropped, as XState drops the output of a stopped child.
 */
export class CallsInFlight implements CallPort {
  private readonly bySaga = new WeakMap<object, Map<string, AbortController>>();

  constructor(private readonly send: CallFn) {}

  start(saga: object, id: string, input: CallInput, deliver: (result: CallResult) => void): void {
    let calls = this.bySaga.get(saga);
    if (!calls) this.bySaga.set(saga, (calls = new Map<string, AbortController>()));
    const controller = new AbortController();
    calls.set(id, controller);
    const settle = (result: CallResult): void => {
      // Cancelled: the state was left (timeout, failure, deadline) or the saga was stopped.
      if (controller.signal.aborted) return;
      calls.delete(id);
      deliver(result);
    };
    let sent: Promise<CallOutput>;
    try {
      sent = this.send(input, controller.signal);
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sent.then(
      (output) => settle({ output }),
      (error: unknown) => settle({ error }),
    );
  }

  cancel(saga: object, id: string): void {
    const calls = this.bySaga.get(saga);
    const controller = calls?.get(id);
    if (!controller) return;
    calls?.delete(id);
    controller.abort();
  }

  /**
   * Aborts every call of a saga. Stopping an actor runs no exit actions, so the runner calls this
   * when it stops a saga before its end (an abandoned saga).
   */
  abortAll(saga: object): void {
    const calls = this.bySaga.get(saga);
    if (!calls) return;
    this.bySaga.delete(saga);
    for (const c of calls.values()) c.abort();
  }
}
