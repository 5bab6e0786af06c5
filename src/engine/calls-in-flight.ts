import type { Clock } from '../clock';
import type { CallingSaga, CallPort } from '../runtime/machine';
import type { CallInput, CallOutput } from '../runtime/saga-state';
import { CallCancellation } from './http-caller';

/**
 * Sends one call and resolves with its outcome (the runner's `callStep`); `cancellation` stops it.
 * A rejection counts as a retryable, in-doubt outcome.
 */
export type CallFn = (input: CallInput, cancellation: CallCancellation) => Promise<CallOutput>;

/** One call: its cancellation and its timer. */
interface InFlight {
  readonly cancellation: CallCancellation;
  timer: unknown;
}

/**
 * The calls a runner's sagas have in flight, by saga and call id: the machine's CallPort. The
 * machine says when a call starts (with its timeout) and when its state is left; this object owns
 * the calls' cancellations and timers, so the machine itself keeps no state outside its context.
 * An answer that arrives after its call was cancelled is dropped, as XState drops the output of a
 * stopped child. Timers run on the saga's clock (the one its actor runs on).
 */
export class CallsInFlight implements CallPort {
  private readonly bySaga = new WeakMap<CallingSaga, Map<string, InFlight>>();

  constructor(
    private readonly send: CallFn,
    private readonly clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>,
  ) {}

  start(saga: CallingSaga, id: string, input: CallInput, timeoutMs: number): void {
    let calls = this.bySaga.get(saga);
    if (!calls) this.bySaga.set(saga, (calls = new Map<string, InFlight>()));
    const call: InFlight = { cancellation: new CallCancellation(), timer: undefined };
    calls.set(id, call);
    call.timer = this.clock.setTimeout(() => {
      call.timer = undefined;
      // The saga leaves the call's state on its timeout, which cancels (aborts) the call.
      if (!call.cancellation.cancelled) saga.send({ type: `timeout.${id}` });
    }, timeoutMs);
    const settle = (result: { output: CallOutput } | { error: unknown }): void => {
      // Cancelled: the state was left (timeout, failure, deadline) or the saga was stopped.
      if (call.cancellation.cancelled) return;
      if (calls.get(id) === call) calls.delete(id);
      this.stopTimer(call);
      saga.send({ type: `call.${id}`, ...result });
    };
    let sent: Promise<CallOutput>;
    try {
      sent = this.send(input, call.cancellation);
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sent.then(
      (output) => settle({ output }),
      (error: unknown) => settle({ error }),
    );
  }

  cancel(saga: CallingSaga, id: string): void {
    const calls = this.bySaga.get(saga);
    const call = calls?.get(id);
    if (!call) return;
    calls?.delete(id);
    this.stop(call);
  }

  /**
   * Aborts every call of a saga. Stopping an actor runs no exit actions, so the runner calls this
   * when it stops a saga before its end (an abandoned saga).
   */
  abortAll(saga: CallingSaga): void {
    const calls = this.bySaga.get(saga);
    if (!calls) return;
    this.bySaga.delete(saga);
    for (const call of calls.values()) this.stop(call);
  }

  private stop(call: InFlight): void {
    this.stopTimer(call);
    call.cancellation.cancel();
  }

  private stopTimer(call: InFlight): void {
    if (call.timer === undefined) return;
    this.clock.clearTimeout(call.timer);
    call.timer = undefined;
  }
}
