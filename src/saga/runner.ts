import { randomUUID } from 'node:crypto';
import type { Actor, SnapshotFrom } from 'xstate';
import { createActor, fromPromise } from 'xstate';
import type { Clock } from '../clock';
import { ERRORS, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import type { Observer } from '../observer';
import { NOOP_OBSERVER } from '../observer';
import type { HttpCaller } from '../participants/step-caller';
import { CallNetworkError } from '../participants/step-caller';
import type { SagaLog, SagaStatus } from '../saga-log/saga-log';
import type { SagaDefinition, TemplateScope } from './definition';
import type {
  CallInput,
  CallOutput,
  ErrorInfo,
  FinalState,
  SagaContext,
  SagaMachine,
  StepRun,
} from './machine';
import { buildSagaMachine } from './machine';
import { classifyNetworkError, classifyResponse } from './outcome';
import { renderRequest } from './render';

/**
 * Runs sagas: one XState actor per saga, built from the definition's machine (built once per
 * definition) with the one I/O actor, `callStep`, provided here. `callStep` records the dispatch in
 * the saga log before it sends anything, and the outcome before the machine may act on it.
 */

export interface StepSummary {
  readonly name: string;
  readonly status: StepRun['status'];
  readonly attempts: number;
  readonly httpStatus?: number;
  readonly compensation: StepRun['compensation']['status'];
  readonly error?: ErrorInfo;
}

export interface SagaResult {
  readonly sagaId: string;
  readonly definition: string;
  readonly status: FinalState;
  readonly failedStep?: string;
  readonly error?: ErrorInfo;
  readonly steps: readonly StepSummary[];
  /** Responses of the steps that succeeded, for the success answer's templates. */
  readonly scope: TemplateScope;
}

export interface RunnerDeps {
  readonly log: SagaLog;
  readonly http: HttpCaller;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random?: () => number;
  readonly newId?: () => string;
  readonly observer?: Observer;
}

export interface StartMeta {
  readonly traceparent?: string;
  readonly requestId?: string;
}

type SagaActor = Actor<SagaMachine>;
type SagaSnapshot = SnapshotFrom<SagaMachine>;

/** The W3C trace id inside a traceparent header, if it is well formed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const m = traceparent ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent.trim()) : null;
  return m?.[1];
}

function summarize(context: SagaContext): StepSummary[] {
  return Object.entries(context.steps).map(([name, run]) => ({
    name,
    status: run.status,
    attempts: run.attempts,
    ...(run.response ? { httpStatus: run.response.status } : {}),
    compensation: run.compensation.status,
    ...(run.error ? { error: run.error } : {}),
  }));
}

/** One running saga, as the ext_proc processor sees it. */
export class SagaExecution {
  readonly settled: Promise<SagaResult>;
  /** Resolves when the saga reaches its pivot (pivot mode) or its end, whichever is first. */
  readonly stepsDone: Promise<'pivot' | 'final'>;

  constructor(
    readonly sagaId: string,
    readonly definition: SagaDefinition,
    private readonly actor: SagaActor,
    settled: Promise<SagaResult>,
    stepsDone: Promise<'pivot' | 'final'>,
  ) {
    this.settled = settled;
    this.stepsDone = stepsDone;
  }

  /** The scope as it is now: the success answer and upstream mutations render from it. */
  scope(): TemplateScope {
    return scopeOf(this.definition, this.actor.getSnapshot().context);
  }

  /** The steps as they are now. */
  steps(): StepSummary[] {
    return summarize(this.actor.getSnapshot().context);
  }

  upstreamResponded(status: number): void {
    this.actor.send({ type: 'saga.upstream.response', status });
  }

  upstreamFailed(message: string): void {
    this.actor.send({ type: 'saga.upstream.failed', message });
  }
}

function scopeOf(definition: SagaDefinition, context: SagaContext): TemplateScope {
  const steps: Record<string, { response: NonNullable<StepRun['response']> }> = {};
  for (const [name, run] of Object.entries(context.steps))
    if (run.response) steps[name] = { response: run.response };
  return { request: context.request, steps, saga: { id: context.sagaId, name: definition.name } };
}

export class SagaRunner {
  private readonly machines = new WeakMap<SagaDefinition, SagaMachine>();
  private readonly loggers = new Map<string, Logger>();
  private readonly running = new Map<string, SagaActor>();
  private readonly newId: () => string;
  private readonly observer: Observer;

  constructor(private readonly deps: RunnerDeps) {
    this.newId = deps.newId ?? randomUUID;
    this.observer = deps.observer ?? NOOP_OBSERVER;
  }

  /** Sagas in flight in this process. */
  get inFlight(): number {
    return this.running.size;
  }

  /**
   * Records the saga's start, then starts its actor. The start record is written before any step
   * can be dispatched; if it cannot be written, nothing runs and the error propagates.
   */
  async start(
    definition: SagaDefinition,
    request: TemplateScope['request'],
    meta: StartMeta = {},
  ): Promise<SagaExecution> {
    const sagaId = this.newId();
    const traceId = traceIdOf(meta.traceparent);
    const logger = this.deps.logger.child({
      saga_id: sagaId,
      saga: definition.name,
      ...(meta.requestId ? { request_id: meta.requestId } : {}),
      ...(traceId ? { trace_id: traceId } : {}),
    });
    await this.deps.log.append(sagaId, {
      type: 'saga.started',
      definition: definition.name,
      version: definition.version,
      request: { method: request.method, path: request.path, body: request.body },
      ...(meta.traceparent ? { traceparent: meta.traceparent } : {}),
    });
    this.loggers.set(sagaId, logger);
    logger.info({ definition_version: definition.version }, 'saga started');
    this.observer.sagaStarted(definition.name);
    const startedAt = this.deps.clock.now();

    const actor = createActor(this.machineFor(definition), {
      input: { sagaId, request, ...(meta.traceparent ? { traceparent: meta.traceparent } : {}) },
      clock: this.deps.clock,
    });
    this.running.set(sagaId, actor);

    let resolveSteps: (value: 'pivot' | 'final') => void = () => undefined;
    const stepsDone = new Promise<'pivot' | 'final'>((resolve) => (resolveSteps = resolve));
    const settled = new Promise<SagaResult>((resolve) => {
      let previous = '';
      const finish = (snapshot: SagaSnapshot, status: FinalState, error?: ErrorInfo): void => {
        subscription.unsubscribe();
        this.running.delete(sagaId);
        const context = snapshot.context;
        const result: SagaResult = {
          sagaId,
          definition: definition.name,
          status,
          ...(context.failedStep ? { failedStep: context.failedStep } : {}),
          ...((error ?? context.error) ? { error: error ?? context.error } : {}),
          steps: summarize(context),
          scope: scopeOf(definition, context),
        };
        // Record the end before anyone answers the client with it.
        this.deps.log
          .append(sagaId, { type: 'saga.finished', status: status satisfies SagaStatus })
          .catch((err: unknown) => logger.error({ err }, 'could not record the end of the saga'))
          .finally(() => {
            this.loggers.delete(sagaId);
            logger.info({ status, failed_step: result.failedStep, error: result.error }, 'saga finished');
            this.observer.sagaFinished(definition.name, status, this.deps.clock.now() - startedAt);
            resolveSteps('final');
            resolve(result);
          });
      };
      const subscription = actor.subscribe({
        next: (snapshot) => {
          const state =
            typeof snapshot.value === 'string' ? snapshot.value : (Object.keys(snapshot.value)[0] ?? '');
          if (state === previous) return;
          previous = state;
          if (state === 'compensating') this.recordCompensating(sagaId, snapshot.context, logger);
          if (state === 'pivot') resolveSteps('pivot');
          if (snapshot.status === 'done') finish(snapshot, state as FinalState);
        },
        error: (err) => {
          // A bug in an action, not a participant's failure: the saga cannot go on safely.
          logger.error({ err }, 'saga actor failed');
          const e = toSagameshError(err);
          finish(actor.getSnapshot(), 'stuck', { code: e.code, message: e.message });
        },
      });
    });
    actor.start();
    return new SagaExecution(sagaId, definition, actor, settled, stepsDone);
  }

  /** Whether this process is running the saga right now. */
  isRunning(sagaId: string): boolean {
    return this.running.has(sagaId);
  }

  /**
   * Compensates a running saga (operator action). False when this process is not running it;
   * a saga already compensating or at its pivot ignores steps it no longer needs.
   */
  abort(sagaId: string, reason: string): boolean {
    const actor = this.running.get(sagaId);
    if (!actor) return false;
    actor.send({ type: 'saga.abort', reason });
    return true;
  }

  /** Stops every actor without recording anything: what was in flight is left for recovery. */
  stopAll(): void {
    for (const actor of this.running.values()) actor.stop();
    this.running.clear();
  }

  private recordCompensating(sagaId: string, context: SagaContext, logger: Logger): void {
    const error = context.error ?? { code: ERRORS.INTERNAL.code, message: 'compensating' };
    logger.warn({ failed_step: context.failedStep, error }, 'saga compensating');
    this.deps.log
      .append(sagaId, {
        type: 'saga.compensating',
        ...(context.failedStep ? { failedStep: context.failedStep } : {}),
        error,
      })
      .catch((err: unknown) => logger.error({ err }, 'could not record compensating'));
  }

  private machineFor(definition: SagaDefinition): SagaMachine {
    let machine = this.machines.get(definition);
    if (!machine) {
      const built = buildSagaMachine(definition, this.deps.random ? { random: this.deps.random } : {});
      machine = built.provide({
        actors: {
          callStep: fromPromise<CallOutput, CallInput>(({ input, signal }) =>
            this.callStep(definition, input, signal),
          ),
        },
      });
      this.machines.set(definition, machine);
    }
    return machine;
  }

  /** The one place a saga touches the network. Record, then act; record the outcome, then report. */
  private async callStep(
    definition: SagaDefinition,
    input: CallInput,
    signal: AbortSignal,
  ): Promise<CallOutput> {
    const logger = this.loggers.get(input.sagaId) ?? this.deps.logger;
    const step = definition.steps.find((s) => s.name === input.step);
    const call = input.kind === 'action' ? step?.action : step?.compensation;
    if (!call) throw new Error(`no ${input.kind} for step ${input.step}`);

    let request;
    try {
      request = await renderRequest(call.request, input.scope);
    } catch (err) {
      const e = toSagameshError(err);
      const output: CallOutput = {
        outcome: 'rejected',
        applied: 'no',
        error: { code: e.code, message: e.message },
      };
      await this.recordOutcome(input, output);
      return output;
    }

    const { sagaId, kind, attempt, replay } = input;
    await this.deps.log.append(sagaId, { type: 'call.dispatched', step: input.step, kind, attempt, replay });
    const started = this.deps.clock.now();
    let output: CallOutput;
    try {
      const response = await this.deps.http.call({
        method: request.method,
        origin: request.origin,
        path: request.path,
        headers: {
          ...request.headers,
          'x-sagamesh-saga-id': sagaId,
          'x-sagamesh-step': input.step,
          'x-sagamesh-kind': kind,
          'idempotency-key': `${sagaId}:${input.step}:${kind}`,
          ...(input.traceparent ? { traceparent: input.traceparent } : {}),
        },
        ...(request.body !== undefined ? { body: request.body } : {}),
        signal,
      });
      output = classifyResponse(kind, call, response, input.step);
    } catch (err) {
      if (signal.aborted) {
        // The machine timed the call out (or the saga moved on); it records that itself.
        logger.debug({ step: input.step, kind, attempt }, 'call aborted');
        const durationMs = this.deps.clock.now() - started;
        this.observer.callCompleted({
          definition: definition.name,
          step: input.step,
          kind,
          attempt,
          outcome: 'aborted',
          durationMs,
        });
        throw err;
      }
      const errno = err instanceof CallNetworkError ? err.errno : undefined;
      output = classifyNetworkError(errno, err instanceof Error ? err.message : String(err), input.step);
    }
    await this.recordOutcome(input, output);
    const durationMs = this.deps.clock.now() - started;
    this.observer.callCompleted({
      definition: definition.name,
      step: input.step,
      kind,
      attempt,
      outcome: output.outcome,
      durationMs,
    });
    logger.info(
      {
        step: input.step,
        kind,
        attempt,
        replay,
        outcome: output.outcome,
        status: output.response?.status,
        duration_ms: durationMs,
      },
      'call completed',
    );
    return output;
  }

  private async recordOutcome(input: CallInput, output: CallOutput): Promise<void> {
    await this.deps.log.append(input.sagaId, {
      type: 'call.completed',
      step: input.step,
      kind: input.kind,
      attempt: input.attempt,
      outcome: output.outcome,
      ...(output.response ? { status: output.response.status } : {}),
      ...(output.error ? { error: output.error } : {}),
    });
  }
}
