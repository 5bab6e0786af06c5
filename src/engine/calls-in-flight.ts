import type { Clock } from '../clock';
import type { CallingSaga, CallPort } from '../runtime/machine';
import type { CallInput, CallOutput } from '../runtime/saga-state';
import { CallCancellation } from './http-caller';

/**
 * Sends one call and resolves with its outcome (the runner's `callStep`); `cancellation` stops it.
 * A rejection counts as a retryable, in-doubt outcome.
 */
export type CallFn = (input: CallInput, cancellation: CallCancellation) => Promise<CallOutput>;

/** One call: its cancellation (which it is) and when its timeout passes. */
class InFlight extends CallCancellation {
  constructor(
    readonly id: string,
    /** On the clock's `now()`; Infinity once its timeout was sent. */
    public due: number,
  ) {
    super();
  }
}

/** One saga's calls in flight, and the one timer for the earliest of their timeouts. */
interface SagaCalls {
  readonly calls: Map<string, InFlight>;
  timer: unknown;
  /** When `timer` fires (Infinity: no timer). */
  timerAt: number;
}

/**
 * The calls a runner's sagas have in flight, by saga and call id: the machine's CallPort. The
 * machine says when a call starts (with its timeout) and when its state is left; this object owns
 * the calls' cancellations and timeouts, so the machine itself keeps no state outside its context.
 * An answer that arrives after its call was cancelled is dropped, as XState drops the output of a
 * stopped child. Timeouts run on the saga's clock (the one its machine runs on), one timer per saga
 * for the earliest of its calls' timeouts: a timer per call cost each call a Timeout and a closure
 * (bench/notes.md §5).
 */
export class CallsInFlight implements CallPort {
  private readonly bySaga = new WeakMap<CallingSaga, SagaCalls>();

  constructor(
    private readonly send: CallFn,
    private readonly clock: Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>,
  ) {}

  start(saga: CallingSaga, id: string, input: CallInput, timeoutMs: number): void {
    const entry = this.entryOf(saga);
    const call = new InFlight(id, this.clock.now() + timeoutMs);
    entry.calls.set(id, call);
    this.arm(saga, entry);
    const settle = (result: { output: CallOutput } | { error: unknown }): void => {
      // Cancelled: the state was left (timeout, failure, deadline) or the saga was stopped.
      if (call.cancelled) return;
      if (entry.calls.get(id) === call) this.forget(entry, id);
      saga.send({ type: `call.${id}`, ...result });
    };
    let sent: Promise<CallOutput>;
    try {
      sent = this.send(input, call);
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sent.then(
      (output) => settle({ output }),
      (error: unknown) => settle({ error }),
    );
  }

  cancel(saga: CallingSaga, id: string): void {
    const entry = this.bySaga.get(saga);
    const call = entry?.calls.get(id);
    if (!entry || !call) return;
    this.forget(entry, id);
    call.cancel();
  }

  /**
   * Cancels every call of a saga. Stopping a saga runs no exit actions, so the runner calls this
   * when it stops a saga before its end (an abandoned saga).
   */
  abortAll(saga: CallingSaga): void {
    const entry = this.bySaga.get(saga);
    if (!entry) return;
    this.bySaga.delete(saga);
    this.disarm(entry);
    for (const call of entry.calls.values()) call.cancel();
  }

  private entryOf(saga: CallingSaga): SagaCalls {
    let entry = this.bySaga.get(saga);
    if (!entry) this.bySaga.set(saga, (entry = { calls: new Map(), timer: undefined, timerAt: Infinity }));
    return entry;
  }

  /** A call answered or cancelled; with none left, the saga's timer goes too (it holds the saga). */
  private forget(entry: SagaCalls, id: string): void {
    entry.calls.delete(id);
    if (entry.calls.size === 0) this.disarm(entry);
  }

  /** The saga's timer set for the earliest timeout still to send (none when there is none). */
  private arm(saga: CallingSaga, entry: SagaCalls): void {
    let earliest = Infinity;
    for (const call of entry.calls.values()) if (call.due < earliest) earliest = call.due;
    if (earliest === entry.timerAt) return;
    this.disarm(entry);
    if (earliest === Infinity) return;
    entry.timerAt = earliest;
    entry.timer = this.clock.setTimeout(
      () => this.fire(saga, entry),
      Math.max(0, earliest - this.clock.now()),
    );
  }

  private disarm(entry: SagaCalls): void {
    if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.timerAt = Infinity;
  }

  /** Sends `timeout.<id>` for each call whose timeout passed (once: the machine cancels it), then re-arms. */
  private fire(saga: CallingSaga, entry: SagaCalls): void {
    entry.timer = undefined;
    entry.timerAt = Infinity;
    const now = this.clock.now();
    const due = [...entry.calls.values()].filter((call) => call.due <= now);
    for (const call of due) call.due = Infinity;
    for (const call of due) if (!call.cancelled) saga.send({ type: `timeout.${call.id}` });
    if (this.bySaga.get(saga) === entry) this.arm(saga, entry);
  }
}
