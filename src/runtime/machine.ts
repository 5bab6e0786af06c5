import type { AnyEventObject } from 'xstate';
import { assign, raise, setup } from 'xstate';
import { ERRORS } from '../errors';
import type { CallDefinition, SagaDefinition, StepDefinition, StepResponse } from '../definition/definition';
import { backoffDelayMs, jitterOf } from './backoff';
import type {
  CallInput,
  CallKind,
  CallOutput,
  CompensationRun,
  ErrorInfo,
  SagaContext,
  SagaInput,
  SagaMachineEvent,
  StepRun,
} from './saga-state';
import {
  actionAnswered,
  actionResolved,
  actionSent,
  answerOf,
  freshStep,
  needsCompensation,
} from './saga-state';

/**
 * The pure machine builder: SagaDefinition → XState machine. The machine does no I/O of its own
 * and keeps no state outside its context. Every request a saga sends goes through the one port the
 * runner passes in (CallPort, the runner's CallsInFlight): a calling state's entry action `dispatch`
 * starts the call, the answer comes back to the saga as the event `call.<kind>.<step>`, and the
 * state's exit action `cancel` aborts a call still in flight (a timeout, a failure elsewhere, the
 * deadline). Time goes through the clock it runs on. The same
 * builder feeds the server and the state-chart rendering, so what operators see is what runs.
 *
 * Why actions and not an invoked `fromPromise` actor per call: a child actor per call cost a fifth
 * to a quarter of the machine's CPU and a fifth of a waiting saga's heap (bench/notes.md,
 * 2026-11-23). The states, transitions and semantics are the same: an answer that arrives after its
 * state was left is dropped, as XState drops the output of a stopped child.
 *
 * Shape:
 *   running (parallel: one region per step; a region waits for its dependencies, then calls)
 *     ├─ every region done ─▶ succeeded  (respond: aggregate)
 *     │                     └▶ pivot ── upstream ok ─▶ succeeded / upstream failed ─▶ compensating
 *     └─ a step failed, or the deadline passed ─▶ compensating
 *   compensating (parallel: one region per step; a region waits until every step that depends on
 *   it has settled, then undoes its step if it succeeded or may have succeeded)
 *     └─ every region settled ─▶ compensated | stuck
 */

/** The saga a call belongs to: the port sends the call's answer or timeout to it as an event. */
export interface CallingSaga {
  send(event: SagaMachineEvent): void;
}

/**
 * The machine's one I/O, passed in by whoever runs it (the runner's CallsInFlight): a calling
 * state's entry starts its call, its exit cancels it. The port owns the calls in flight and their
 * timers; the machine keeps nothing outside its context.
 */
export interface CallPort {
  /**
   * Sends the call `id` (`action.hotel`) of `saga`. Its result comes back to the saga as the event
   * `call.<id>` (`{ output }` or `{ error }`), or, when `timeoutMs` passes first on the saga's
   * clock, as `timeout.<id>` — unless `cancel` came first.
   */
  start(saga: CallingSaga, id: string, input: CallInput, timeoutMs: number): void;
  /** The saga left the call's state: the call is aborted, its timer stopped, its result dropped. */
  cancel(saga: CallingSaga, id: string): void;
}

export interface BuildOptions {
  /** The jitter of a retry named by its key (backoff.ts jitterOf by default; tests pin it). */
  readonly jitter?: (key: string) => number;
  /** Sends the calls. Without it every call fails (a chart, not a runnable saga). */
  readonly calls?: CallPort;
}

/** The port of a machine built only to be drawn: every call fails. */
const NO_CALLS: CallPort = {
  start: (saga, id) => {
    void Promise.resolve().then(() => saga.send({ type: `call.${id}`, error: new Error('no call port') }));
  },
  cancel: () => undefined,
};

/** A call's id within its saga (`action.hotel`, `resolve.hotel`, `compensation.hotel`). */
const callId = (kind: CallKind | 'resolve', step: string): string => `${kind}.${step}`;
/** The event that brings a call's answer back to its saga (CallPort). */
const answerEvent = (kind: CallKind | 'resolve', step: string): `call.${string}` =>
  `call.${callId(kind, step)}`;
/** The event that says a call's timeout passed before its answer (`timeout.action.hotel`, CallPort). */
const timeoutEvent = (kind: CallKind | 'resolve', step: string): `timeout.${string}` =>
  `timeout.${callId(kind, step)}`;
const delayName = (kind: CallKind, step: string): string => `backoff.${kind}.${step}`;
/** The saga's deadline, a named delay: per saga (context.deadlineMs), not per definition. */
const SAGA_DEADLINE = 'saga.deadline';

function isCallOutput(value: unknown): value is CallOutput {
  return typeof value === 'object' && value !== null && 'outcome' in value && 'applied' in value;
}

/** The outcome a call's answer event carries, or a retryable, in-doubt one when the call threw. */
function outputOf(event: AnyEventObject): CallOutput {
  const output: unknown = (event as { output?: unknown }).output;
  if (isCallOutput(output)) return output;
  const error: unknown = (event as { error?: unknown }).error;
  return {
    outcome: 'retryable',
    applied: 'maybe',
    error: { code: ERRORS.INTERNAL.code, message: error instanceof Error ? error.message : String(error) },
  };
}

function initialSteps(definition: SagaDefinition): Record<string, StepRun> {
  return Object.fromEntries(definition.steps.map((s) => [s.name, freshStep()]));
}

export function buildSagaMachine(definition: SagaDefinition, options: BuildOptions = {}) {
  const jitter = options.jitter ?? jitterOf;
  const calls = options.calls ?? NO_CALLS;
  const byName = new Map(definition.steps.map((s) => [s.name, s]));
  const dependents = new Map<string, string[]>(definition.steps.map((s) => [s.name, []]));
  for (const s of definition.steps) for (const d of s.dependsOn) dependents.get(d)?.push(s.name);

  const callOf = (step: string, kind: CallKind): CallDefinition | undefined => {
    const def = byName.get(step);
    return kind === 'action' ? def?.action : def?.compensation;
  };
  /** The wait before the next attempt of a step's call: its backoff, with this retry's jitter. */
  const retryDelayMs = (context: SagaContext, step: string, kind: CallKind, attempt: number): number => {
    const call = callOf(step, kind);
    return call
      ? backoffDelayMs(call.retry, attempt, jitter(`${context.sagaId}:${step}:${kind}:${attempt}`))
      : 0;
  };

  /** A compensation must read its own step's response: an in-doubt step is first replayed to learn it. */
  const compensationReadsOwnResponse = (step: StepDefinition): boolean => {
    const c = step.compensation?.request;
    if (!c) return false;
    const refs = [
      ...c.url.stepRefs,
      ...Object.values(c.headers).flatMap((h) => h.stepRefs),
      ...(c.body?.stepRefs ?? []),
    ];
    return refs.includes(step.name);
  };

  const patchStep = (context: SagaContext, step: string, patch: Partial<StepRun>): SagaContext['steps'] => {
    const run = context.steps[step];
    if (!run) return context.steps;
    return { ...context.steps, [step]: { ...run, ...patch } };
  };
  const patchCompensation = (context: SagaContext, step: string, patch: Partial<CompensationRun>) => {
    const run = context.steps[step];
    if (!run) return context.steps;
    return { ...context.steps, [step]: { ...run, compensation: { ...run.compensation, ...patch } } };
  };

  const attemptsLeft = (context: SagaContext, step: string, kind: CallKind | 'resolve'): boolean => {
    const call = callOf(step, kind === 'action' ? 'action' : 'compensation');
    const run = context.steps[step];
    if (!call || !run) return false;
    const used = kind === 'action' ? run.attempts : run.compensation.attempts;
    return used < call.retry.attempts;
  };

  const callInput = (context: SagaContext, step: string, kind: CallKind, replay: boolean): CallInput => {
    const run = context.steps[step];
    const steps: Record<string, { response: StepResponse }> = {};
    for (const [name, r] of Object.entries(context.steps))
      if (r.response) steps[name] = { response: r.response };
    return {
      sagaId: context.sagaId,
      step,
      kind,
      attempt: (kind === 'action' && !replay ? run?.attempts : run?.compensation.attempts) ?? 1,
      replay,
      scope: { request: context.request, steps, saga: { id: context.sagaId, name: definition.name } },
      ...(context.traceparent ? { traceparent: context.traceparent } : {}),
    };
  };

  const delays: Record<string, (args: { context: SagaContext }) => number> = {
    [SAGA_DEADLINE]: ({ context }) => context.deadlineMs,
  };
  for (const step of definition.steps) {
    delays[delayName('action', step.name)] = ({ context }) => context.steps[step.name]?.nextDelayMs ?? 0;
    delays[delayName('compensation', step.name)] = ({ context }) =>
      context.steps[step.name]?.nextDelayMs ?? 0;
  }

  const machineSetup = setup({
    types: {
      context: {} as SagaContext,
      events: {} as SagaMachineEvent,
      input: {} as SagaInput,
    },
    guards: {
      dependenciesSucceeded: ({ context }, params: { step: string }) =>
        (byName.get(params.step)?.dependsOn ?? []).every((d) => context.steps[d]?.status === 'succeeded'),
      dependentsSettled: ({ context }, params: { step: string }) =>
        (dependents.get(params.step) ?? []).every((d) =>
          ['done', 'skipped', 'stuck'].includes(context.steps[d]?.compensation.status ?? 'skipped'),
        ),
      callSucceeded: ({ event }) => outputOf(event).outcome === 'success',
      callRejected: ({ event }) => outputOf(event).outcome === 'rejected',
      callRetryable: ({ context, event }, params: { step: string; kind: CallKind | 'resolve' }) =>
        outputOf(event).outcome === 'retryable' && attemptsLeft(context, params.step, params.kind),
      attemptsLeft: ({ context }, params: { step: string; kind: CallKind | 'resolve' }) =>
        attemptsLeft(context, params.step, params.kind),
      answerOnItsWay: ({ context }, params: { step: string }) =>
        context.awaiting?.includes(params.step) === true,
      mustCompensate: ({ context }, params: { step: string }) => {
        const run = context.steps[params.step];
        // A recovered saga may have undone some steps already; those stay done.
        const settled = run?.compensation.status === 'done' || run?.compensation.status === 'skipped';
        return Boolean(byName.get(params.step)?.compensation && run && !settled && needsCompensation(run));
      },
      isRecovered: ({ context }) => context.recovered,
      // Every step succeeded and the saga never began to compensate (a `saga.compensating` record
      // leaves its error): it only lacked its end. One that was compensating goes on compensating.
      recoveredComplete: ({ context }) =>
        context.recovered &&
        context.error === undefined &&
        definition.respond === 'aggregate' &&
        Object.values(context.steps).every((s) => s.status === 'succeeded'),
      mustResolveFirst: ({ context }, params: { step: string }) => {
        const run = context.steps[params.step];
        const def = byName.get(params.step);
        return Boolean(def && run && !run.response && compensationReadsOwnResponse(def));
      },
      upstreamSucceeded: ({ event }) => event.type === 'saga.upstream.response' && event.status < 400,
      anyStuck: ({ context }) => Object.values(context.steps).some((s) => s.compensation.status === 'stuck'),
    },
    actions: {
      // Entry of a calling state: start the call; its answer comes back as `call.<kind>.<step>`, or
      // `timeout.<kind>.<step>` once its timeout passed first.
      dispatch: (
        { context, self },
        params: { step: string; kind: CallKind | 'resolve'; timeoutMs: number },
      ) => {
        const input =
          params.kind === 'resolve'
            ? callInput(context, params.step, 'action', true)
            : callInput(context, params.step, params.kind, false);
        calls.start(self, callId(params.kind, params.step), input, params.timeoutMs);
      },
      // Exit of a calling state: a call still in flight is aborted, and its answer dropped — but
      // for an action left because another step failed: its answer is on its way, and the
      // compensation waits for it (markAwaiting, the `awaiting` state) rather than replaying it.
      cancel: ({ self, event }, params: { step: string; kind: CallKind | 'resolve' }) => {
        if (params.kind === 'action' && event.type === 'saga.step.failed') return;
        calls.cancel(self, callId(params.kind, params.step));
      },
      startAttempt: assign(({ context }, params: { step: string }) => {
        const run = context.steps[params.step];
        return run ? { steps: patchStep(context, params.step, actionSent(run, run.attempts + 1)) } : {};
      }),
      recordActionOutcome: assign(({ context, event }, params: { step: string }) => {
        const run = context.steps[params.step];
        if (!run) return {};
        const nextDelayMs = retryDelayMs(context, params.step, 'action', run.attempts);
        return {
          steps: patchStep(context, params.step, {
            ...actionAnswered(run, answerOf(outputOf(event))),
            nextDelayMs,
          }),
        };
      }),
      // No answer within the timeout: an answer that says nothing (it may have been applied).
      recordActionTimeout: assign(({ context }, params: { step: string }) => {
        const run = context.steps[params.step];
        if (!run) return {};
        const call = callOf(params.step, 'action');
        const error: ErrorInfo = {
          code: ERRORS.STEP_TIMEOUT.code,
          message: `${params.step}: no answer within ${call?.timeoutMs ?? 0}ms (attempt ${run.attempts})`,
        };
        const nextDelayMs = retryDelayMs(context, params.step, 'action', run.attempts);
        return {
          steps: patchStep(context, params.step, {
            ...actionAnswered(run, { outcome: 'retryable', applied: 'maybe', error }),
            nextDelayMs,
          }),
        };
      }),
      markStepFailed: assign(({ context }, params: { step: string }) => ({
        steps: patchStep(context, params.step, { status: 'failed' }),
      })),
      raiseStepFailed: raise((_, params: { step: string }) => ({
        type: 'saga.step.failed' as const,
        step: params.step,
      })),
      // A step's failure leaves the other actions' calls on their way (`cancel` keeps them): their
      // steps' compensations wait for the answers. The deadline and an abort cut them.
      markAwaiting: assign(({ context, event }) => ({
        awaiting:
          event.type === 'saga.step.failed'
            ? definition.steps.map((st) => st.name).filter((n) => context.steps[n]?.inFlight === true)
            : [],
      })),
      recordFailure: assign(({ context, event }) => {
        if (context.error) return {};
        if (event.type === 'saga.step.failed') {
          const run = context.steps[event.step];
          return {
            failedStep: event.step,
            error: run?.error ?? { code: ERRORS.STEP_REJECTED.code, message: event.step },
          };
        }
        if (event.type === 'saga.upstream.response') {
          return {
            upstreamStatus: event.status,
            error: { code: ERRORS.UPSTREAM_FAILED.code, message: `upstream answered ${event.status}` },
          };
        }
        if (event.type === 'saga.upstream.failed') {
          return { error: { code: ERRORS.UPSTREAM_FAILED.code, message: event.message } };
        }
        if (event.type === 'saga.abort') {
          return { error: { code: ERRORS.SAGA_ABORTED.code, message: `aborted: ${event.reason}` } };
        }
        return {
          error: {
            code: ERRORS.SAGA_DEADLINE.code,
            message: `saga deadline of ${context.deadlineMs}ms passed`,
          },
        };
      }),
      recordInterruption: assign(({ context }) =>
        context.error
          ? {}
          : {
              error: {
                code: ERRORS.SAGA_INTERRUPTED.code,
                message: 'the coordinator stopped while the saga ran; recovered backward',
              },
            },
      ),
      recordUpstream: assign(({ event }) =>
        event.type === 'saga.upstream.response' ? { upstreamStatus: event.status } : {},
      ),
      startCompensation: assign(({ context }, params: { step: string; status: 'resolving' | 'running' }) => {
        const run = context.steps[params.step];
        return {
          steps: patchCompensation(context, params.step, {
            status: params.status,
            attempts: (run?.compensation.attempts ?? 0) + 1,
          }),
        };
      }),
      recordResolved: assign(({ context, event }, params: { step: string }) => {
        const run = context.steps[params.step];
        if (!run) return {};
        return {
          steps: patchStep(context, params.step, {
            ...actionResolved(run, answerOf(outputOf(event))),
            // The replay counts against the compensation's attempts: reset them for the undo itself.
            compensation: { status: 'running', attempts: 0 },
          }),
        };
      }),
      recordCompensationOutcome: assign(({ context, event }, params: { step: string }) => {
        const out = outputOf(event);
        const run = context.steps[params.step];
        if (!run) return {};
        const compensation = { ...run.compensation, ...(out.error ? { error: out.error } : {}) };
        const nextDelayMs = retryDelayMs(context, params.step, 'compensation', run.compensation.attempts);
        return { steps: { ...context.steps, [params.step]: { ...run, compensation, nextDelayMs } } };
      }),
      recordCompensationTimeout: assign(({ context }, params: { step: string }) => {
        const run = context.steps[params.step];
        if (!run) return {};
        return {
          steps: {
            ...context.steps,
            [params.step]: {
              ...run,
              nextDelayMs: retryDelayMs(context, params.step, 'compensation', run.compensation.attempts),
              compensation: {
                ...run.compensation,
                error: { code: ERRORS.STEP_TIMEOUT.code, message: `${params.step}: compensation timed out` },
              },
            },
          },
        };
      }),
      settleCompensation: assign(
        ({ context }, params: { step: string; status: 'done' | 'skipped' | 'stuck' }) => ({
          steps: patchCompensation(context, params.step, { status: params.status }),
        }),
      ),
    },
    delays,
  });

  /** A state's config, typed by the setup above: every action, guard and delay it names exists. */
  type StateConfig = Parameters<typeof machineSetup.createStateConfig>[0];
  type Action = Exclude<NonNullable<StateConfig['entry']>, readonly unknown[]>;
  type Transitions = NonNullable<StateConfig['always']>;

  /**
   * A state that sends one call — the only way the machine sends one, so every `dispatch` has its
   * `cancel` and its answer event: `start`, then `dispatch` on entry; `cancel` on exit; `answers`
   * on the call's answer; `onTimeout` when `timeoutMs` passes first (the port's timer, on the saga's
   * clock: an `after` per call cost XState a scheduled event each, bench/notes.md §2).
   */
  const callState = (
    kind: CallKind | 'resolve',
    step: string,
    start: Action,
    answers: Transitions,
    timeoutMs: number,
    onTimeout: Transitions,
  ): StateConfig => ({
    entry: [start, { type: 'dispatch', params: { step, kind, timeoutMs } }],
    exit: { type: 'cancel', params: { step, kind } },
    on: { [answerEvent(kind, step)]: answers, [timeoutEvent(kind, step)]: onTimeout },
  });

  const actionRegion = (step: StepDefinition): StateConfig => {
    const p = { step: step.name };
    const retryOrFail = (actions: Action): Transitions => [
      {
        guard: { type: 'attemptsLeft', params: { step: step.name, kind: 'action' } },
        target: 'backoff',
        actions,
      },
      { target: 'failed', actions },
    ];
    return {
      // A step with no dependencies calls at once; only a dependent step has a `waiting` state,
      // whose eventless check every event of the saga re-evaluates while it waits.
      initial: step.dependsOn.length > 0 ? 'waiting' : 'calling',
      states: {
        ...(step.dependsOn.length > 0
          ? {
              waiting: { always: { guard: { type: 'dependenciesSucceeded', params: p }, target: 'calling' } },
            }
          : {}),
        calling: callState(
          'action',
          step.name,
          { type: 'startAttempt', params: p },
          [
            {
              guard: 'callSucceeded',
              target: 'succeeded',
              actions: { type: 'recordActionOutcome', params: p },
            },
            {
              guard: { type: 'callRetryable', params: { step: step.name, kind: 'action' } },
              target: 'backoff',
              actions: { type: 'recordActionOutcome', params: p },
            },
            { target: 'failed', actions: { type: 'recordActionOutcome', params: p } },
          ],
          step.action.timeoutMs,
          retryOrFail({ type: 'recordActionTimeout', params: p }),
        ),
        backoff: { after: { [delayName('action', step.name)]: 'calling' } },
        succeeded: { type: 'final' },
        failed: {
          entry: [
            { type: 'markStepFailed', params: p },
            { type: 'raiseStepFailed', params: p },
          ],
        },
      },
    };
  };

  const compensationRegion = (step: StepDefinition): StateConfig => {
    const p = { step: step.name };
    const comp = step.compensation;
    const timeoutMs = comp?.timeoutMs ?? 1;
    const retryOrStuck = (
      kind: 'resolve' | 'compensation',
      backoff: string,
      actions: Action,
    ): Transitions => [
      { guard: { type: 'attemptsLeft', params: { step: step.name, kind } }, target: backoff, actions },
      { target: 'stuck', actions },
    ];
    return {
      initial: 'entering',
      states: {
        entering: {
          always: [
            { guard: { type: 'answerOnItsWay', params: p }, target: 'awaiting' },
            { target: 'waiting' },
          ],
        },
        // The action's call was on its way when another step failed: its answer says what to undo.
        // Past the action's timeout (the same call's timer, started when it was sent) it is in
        // doubt, and resolved below as any such step is.
        awaiting: {
          exit: { type: 'cancel', params: { step: step.name, kind: 'action' } },
          on: {
            [answerEvent('action', step.name)]: {
              target: 'waiting',
              actions: { type: 'recordActionOutcome', params: p },
            },
            [timeoutEvent('action', step.name)]: {
              target: 'waiting',
              actions: { type: 'recordActionTimeout', params: p },
            },
          },
        },
        waiting: { always: { guard: { type: 'dependentsSettled', params: p }, target: 'deciding' } },
        deciding: {
          always: [
            { guard: { type: 'mustCompensate', params: p }, target: 'checking' },
            { target: 'skipped' },
          ],
        },
        checking: {
          always: [
            { guard: { type: 'mustResolveFirst', params: p }, target: 'resolving' },
            { target: 'undoing' },
          ],
        },
        // The step is in doubt and its undo needs its response: replay the action with the same
        // idempotency key; a participant that already applied it answers with the same result.
        resolving: callState(
          'resolve',
          step.name,
          { type: 'startCompensation', params: { step: step.name, status: 'resolving' } },
          [
            { guard: 'callSucceeded', target: 'undoing', actions: { type: 'recordResolved', params: p } },
            {
              guard: { type: 'callRetryable', params: { step: step.name, kind: 'resolve' } },
              target: 'resolveBackoff',
              actions: { type: 'recordCompensationOutcome', params: p },
            },
            // A definitive refusal now means the action never took effect: nothing to undo.
            { guard: 'callRejected', target: 'skipped', actions: { type: 'recordResolved', params: p } },
            // Still in doubt with the budget spent (5xx, unreadable, network): an operator must look.
            { target: 'stuck', actions: { type: 'recordCompensationOutcome', params: p } },
          ],
          timeoutMs,
          retryOrStuck('resolve', 'resolveBackoff', { type: 'recordCompensationTimeout', params: p }),
        ),
        resolveBackoff: { after: { [delayName('compensation', step.name)]: 'resolving' } },
        undoing: callState(
          'compensation',
          step.name,
          { type: 'startCompensation', params: { step: step.name, status: 'running' } },
          [
            {
              guard: 'callSucceeded',
              target: 'done',
              actions: { type: 'recordCompensationOutcome', params: p },
            },
            {
              guard: { type: 'callRetryable', params: { step: step.name, kind: 'compensation' } },
              target: 'undoBackoff',
              actions: { type: 'recordCompensationOutcome', params: p },
            },
            // A refused undo (4xx other than 404) will not get better by retrying.
            { target: 'stuck', actions: { type: 'recordCompensationOutcome', params: p } },
          ],
          timeoutMs,
          retryOrStuck('compensation', 'undoBackoff', { type: 'recordCompensationTimeout', params: p }),
        ),
        undoBackoff: { after: { [delayName('compensation', step.name)]: 'undoing' } },
        done: {
          type: 'final',
          entry: { type: 'settleCompensation', params: { step: step.name, status: 'done' } },
        },
        skipped: {
          type: 'final',
          entry: { type: 'settleCompensation', params: { step: step.name, status: 'skipped' } },
        },
        stuck: {
          type: 'final',
          entry: { type: 'settleCompensation', params: { step: step.name, status: 'stuck' } },
        },
      },
    };
  };

  const toCompensating = {
    target: 'compensating',
    actions: [{ type: 'markAwaiting' }, { type: 'recordFailure' }],
  } as const;
  return machineSetup.createMachine({
    id: 'saga',
    context: ({ input }: { input: SagaInput }): SagaContext => ({
      sagaId: input.sagaId,
      recovered: Boolean(input.recovered),
      request: input.request,
      ...(input.traceparent ? { traceparent: input.traceparent } : {}),
      deadlineMs: Math.min(definition.deadlineMs, input.deadlineMs ?? Infinity),
      steps: { ...initialSteps(definition), ...input.recovered?.steps },
      ...(input.recovered?.failedStep ? { failedStep: input.recovered.failedStep } : {}),
      ...(input.recovered?.error ? { error: input.recovered.error } : {}),
    }),
    initial: 'starting',
    states: {
      // A new saga runs; a recovered one completes (every step had succeeded) or compensates.
      starting: {
        always: [
          { guard: 'recoveredComplete', target: 'succeeded' },
          { guard: 'isRecovered', target: 'compensating', actions: 'recordInterruption' },
          { target: 'running' },
        ],
      },
      running: {
        type: 'parallel',
        states: Object.fromEntries(definition.steps.map((s) => [s.name, actionRegion(s)])),
        on: { 'saga.step.failed': toCompensating, 'saga.abort': toCompensating },
        after: { [SAGA_DEADLINE]: toCompensating },
        onDone: definition.respond === 'upstream' ? 'pivot' : 'succeeded',
      },
      // Pivot mode: the steps are done and the original request is on its way upstream.
      pivot: {
        on: {
          'saga.upstream.response': [
            { guard: 'upstreamSucceeded', target: 'succeeded', actions: 'recordUpstream' },
            toCompensating,
          ],
          'saga.upstream.failed': toCompensating,
          'saga.abort': toCompensating,
        },
        after: { [SAGA_DEADLINE]: toCompensating },
      },
      compensating: {
        type: 'parallel',
        states: Object.fromEntries(definition.steps.map((s) => [s.name, compensationRegion(s)])),
        onDone: [{ guard: 'anyStuck', target: 'stuck' }, { target: 'compensated' }],
      },
      succeeded: { type: 'final' },
      compensated: { type: 'final' },
      stuck: { type: 'final' },
    },
  });
}

export type SagaMachine = ReturnType<typeof buildSagaMachine>;
