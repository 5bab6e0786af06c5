import type { ExecutableActionObject, SnapshotFrom } from 'xstate';
import { createEmptyActor } from 'xstate';
import type { Clock } from '../clock';
import type { CallingSaga, SagaMachine } from '../runtime/machine';
import type { SagaInput, SagaMachineEvent } from '../runtime/saga-state';

/**
 * Runs sagas on their machine without an XState actor per saga: one `MachineHost` per definition
 * holds the machine and one actor scope shared by all its sagas; each saga is a `SagaDriver`
 * holding its snapshot and its timers. The chart is the same XState machine, stepped by XState's
 * own `machine.transition` (its macrostep: guards, assigns, raised events, eventless transitions
 * and final states are XState's); what the driver does is what `createActor` would do around it —
 * a mailbox, executing the actions a step produced, the delayed events (`after`), the observers —
 * and no more. An actor per saga built an actor system, a scheduler, a mailbox and inspection
 * events for each saga, which cost 5% of sagamesh's CPU at saturation (bench/notes.md §2).
 *
 * The machine's actions receive the saga's driver as `self` (the CallPort sends a call's answer
 * to it); the machine uses no other actor feature (no children, no `sendTo`, no `emit`): an
 * action of a kind the driver does not run fails the saga, as an action that throws does.
 */

type SagaSnapshot = SnapshotFrom<SagaMachine>;
type Scope = Parameters<SagaMachine['transition']>[2];

/** What a saga's owner hears: every snapshot after a step (as an actor's observers), or the failure. */
export interface SagaObserver {
  next(snapshot: SagaSnapshot): void;
  error(err: unknown): void;
}

/** A definition's machine and the actor scope its sagas share (built once per definition). */
export class MachineHost {
  private readonly scope: Scope;
  /** The actions of the step being taken (XState hands them to the scope's executor). */
  private collected: ExecutableActionObject[] | undefined;

  constructor(readonly machine: SagaMachine) {
    const self = createEmptyActor();
    this.scope = {
      self,
      id: '',
      sessionId: '',
      system: self.system,
      logger: () => undefined,
      defer: () => undefined,
      emit: () => undefined,
      stopChild: () => undefined,
      actionExecutor: (action: ExecutableActionObject) => {
        if (!this.collected) throw new Error(`action ${action.type} outside a saga's step`);
        this.collected.push(action);
      },
    } as unknown as Scope;
  }

  /** A new saga's first snapshot and the entry actions it must run. */
  initial(input: SagaInput): [SagaSnapshot, ExecutableActionObject[]] {
    return this.collect(() => this.machine.getInitialSnapshot(this.scope, input));
  }

  /** One macrostep of a saga: its next snapshot and the actions to run, in order. */
  step(snapshot: SagaSnapshot, event: SagaMachineEvent): [SagaSnapshot, ExecutableActionObject[]] {
    return this.collect(() => this.machine.transition(snapshot, event, this.scope));
  }

  private collect(run: () => SagaSnapshot): [SagaSnapshot, ExecutableActionObject[]] {
    const actions: ExecutableActionObject[] = [];
    this.collected = actions;
    try {
      return [run(), actions];
    } finally {
      this.collected = undefined;
    }
  }
}

/** One saga on its machine: the snapshot, a mailbox, the delayed events it scheduled. */
export class SagaDriver implements CallingSaga {
  private snapshot: SagaSnapshot;
  /** The first snapshot's entry actions, run by `start`. */
  private pending: ExecutableActionObject[];
  private state: 'created' | 'running' | 'stopped' = 'created';
  /** Events sent while a step runs (by its actions), taken in order after it. */
  private mailbox: SagaMachineEvent[] = [];
  private processing = false;
  /** Delayed events (`after`: the deadline, backoffs), by XState's id for them. */
  private readonly timers = new Map<string, unknown>();

  constructor(
    private readonly host: MachineHost,
    input: SagaInput,
    private readonly clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>,
    private readonly observer: SagaObserver,
  ) {
    // A first snapshot that cannot be built (a bug in the context factory) throws here, to the
    // runner's start or resume: there is no saga to run.
    [this.snapshot, this.pending] = host.initial(input);
  }

  getSnapshot(): SagaSnapshot {
    return this.snapshot;
  }

  /** Runs the first snapshot's entry actions and tells the observer (as an actor's `start`). */
  start(): void {
    if (this.state !== 'created') return;
    this.state = 'running';
    const actions = this.pending;
    this.pending = [];
    this.processing = true;
    try {
      this.settle(actions);
      this.drain();
    } finally {
      this.processing = false;
    }
  }

  /** Delivers an event: at once, or after the step that is running (an action sent it). */
  send(event: SagaMachineEvent): void {
    if (this.state !== 'running') return;
    this.mailbox.push(event);
    if (this.processing) return;
    this.processing = true;
    try {
      this.drain();
    } finally {
      this.processing = false;
    }
  }

  /** Stops the saga where it is: no action runs, no delayed event comes (as an actor's `stop`). */
  stop(): void {
    this.state = 'stopped';
    this.mailbox = [];
    for (const timer of this.timers.values()) this.clock.clearTimeout(timer);
    this.timers.clear();
  }

  private drain(): void {
    let event: SagaMachineEvent | undefined;
    while (this.state === 'running' && (event = this.mailbox.shift()) !== undefined) {
      let actions: ExecutableActionObject[];
      try {
        [this.snapshot, actions] = this.host.step(this.snapshot, event);
      } catch (err) {
        this.fail(err);
        return;
      }
      this.settle(actions);
    }
  }

  /** Runs a step's actions, then tells the observer; a finished saga stops. */
  private settle(actions: ExecutableActionObject[]): void {
    try {
      for (const action of actions) {
        // An action may have stopped the saga (its owner abandoned it): the rest do not run.
        if (this.state !== 'running') return;
        this.run(action);
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.state !== 'running') return;
    if (this.snapshot.status === 'done') this.stop();
    this.observer.next(this.snapshot);
  }

  private run(action: ExecutableActionObject): void {
    if (action.type === 'xstate.raise') {
      // An `after` delay (a raise without a delay went to the step's own queue).
      const { event, delay, id } = action.params as { event: SagaMachineEvent; delay?: number; id?: string };
      if (typeof delay !== 'number' || id === undefined) return;
      this.cancelTimer(id);
      const timer = this.clock.setTimeout(() => {
        this.timers.delete(id);
        this.send(event);
      }, delay);
      this.timers.set(id, timer);
      return;
    }
    if (action.type === 'xstate.cancel') {
      this.cancelTimer((action.params as { sendId: string }).sendId);
      return;
    }
    if (action.type.startsWith('xstate.')) throw new Error(`the saga driver does not run ${action.type}`);
    if (!action.exec) return;
    // XState built `info` for this execution alone: the action acts for this saga.
    (action.info as { self: unknown }).self = this;
    action.exec(action.info, action.params);
  }

  private cancelTimer(id: string): void {
    const timer = this.timers.get(id);
    if (timer === undefined) return;
    this.timers.delete(id);
    this.clock.clearTimeout(timer);
  }

  private fail(err: unknown): void {
    this.stop();
    this.observer.error(err);
  }
}
