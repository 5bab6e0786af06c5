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
import { rebuild } from '../saga-log/recovery';
import type { SagaLog } from '../saga-log/saga-log';
import type { SagaDefinition, TemplateScope } from './definition';
import type {
  CallInput,
  CallOutput,
  ErrorInfo,
  FinalState,
  SagaContext,
  SagaInput,
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
  /** `abandoned`: this process stopped acting on the saga (lease lost, shutdown); another resumes it. */
  readonly status: FinalState | 'abandoned';
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
  /** The definition a saga started with, by version: recovery runs that exact version. */
  readonly resolveDefinition: (version: string, name: string) => Promise<SagaDefinition | undefined>;
  /** Called when a resumed saga ends (to store answers for its Idempotency-Keys). */
  readonly onRecovered?: (result: SagaResult, definition: SagaDefinition) => void;
  /** Recorded in `saga.recovered` records: which instance resumed a saga. */
  readonly instanceId?: string;
}

interface Running {
  readonly actor: SagaActor;
  readonly logger: Logger;
  readonly execution: SagaExecution;
  readonly abandon: (reason: string) => void;
}

export interface StartMeta {
  readonly traceparent?: string;
  readonly requestId?: string;
  /** A saga id allocated beforehand (see allocateId). */
  readonly sagaId?: string;
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
  private readonly sagas = new Map<string, Running>();
  private readonly savedVersions = new Set<string>();
  private readonly newId: () => string;
  private readonly observer: Observer;

  constructor(private readonly deps: RunnerDeps) {
    this.newId = deps.newId ?? randomUUID;
    this.observer = deps.observer ?? NOOP_OBSERVER;
  }

  /** Sagas in flight in this process. */
  get inFlight(): number {
    return this.sagas.size;
  }

  /** Ids of the sagas this process is running. */
  runningIds(): string[] {
    return [...this.sagas.keys()];
  }

  /** A fresh saga id, for callers that must record it before the saga starts (Idempotency-Key). */
  allocateId(): string {
    return this.newId();
  }

  /**
   * Records the saga's start (and its definition's source, once per version), then starts its
   * actor. The start record is written before any step can be dispatched; if it cannot be
   * written, nothing runs and the error propagates.
   */
  async start(
    definition: SagaDefinition,
    request: TemplateScope['request'],
    meta: StartMeta = {},
  ): Promise<SagaExecution> {
    const sagaId = meta.sagaId ?? this.newId();
    if (!this.savedVersions.has(definition.version)) {
      await this.deps.log.saveDefinition({
        name: definition.name,
        version: definition.version,
        file: definition.file,
        source: definition.source,
      });
      this.savedVersions.add(definition.version);
    }
    await this.deps.log.append(sagaId, {
      type: 'saga.started',
      definition: definition.name,
      version: definition.version,
      request,
      ...(meta.traceparent ? { traceparent: meta.traceparent } : {}),
    });
    return this.launch(
      definition,
      { sagaId, request, ...(meta.traceparent ? { traceparent: meta.traceparent } : {}) },
      meta.requestId,
    );
  }

  /**
   * Resumes an unfinished saga from its journal (after a restart or a lease takeover) or, with
   * reason `retry`, re-drives a stuck saga's compensations. Backward recovery: the saga never
   * runs forward again. Resolves undefined when there is nothing to resume.
   */
  async resume(sagaId: string, reason: 'restart' | 'takeover' | 'retry'): Promise<SagaExecution | undefined> {
    if (this.sagas.has(sagaId)) return this.sagas.get(sagaId)?.execution;
    const rebuilt = rebuild(await this.deps.log.history(sagaId), { retryStuck: reason === 'retry' });
    if (!rebuilt) return undefined;
    if (rebuilt.finished && !(reason === 'retry' && rebuilt.finished === 'stuck')) return undefined;
    const { started } = rebuilt;
    const logger = this.deps.logger.child({ saga_id: sagaId, saga: started.definition });
    const definition = await this.deps.resolveDefinition(started.version, started.definition);
    if (!definition) {
      logger.error({ version: started.version }, 'cannot resume: definition version unknown');
      return undefined;
    }
    await this.deps.log.append(sagaId, {
      type: 'saga.recovered',
      reason,
      by: this.deps.instanceId ?? 'local',
    });
    logger.warn({ reason, steps: Object.keys(rebuilt.steps) }, 'saga resumed from the log');
    return this.launch(definition, {
      sagaId,
      request: started.request,
      ...(started.traceparent ? { traceparent: started.traceparent } : {}),
      recovered: {
        steps: rebuilt.steps,
        ...(rebuilt.failedStep ? { failedStep: rebuilt.failedStep } : {}),
        ...(rebuilt.error ? { error: rebuilt.error } : {}),
      },
    });
  }

  /** Operator retry of a stuck saga's compensations. */
  async retry(sagaId: string): Promise<'retrying' | 'not-found' | 'not-stuck'> {
    const summary = await this.deps.log.summary(sagaId);
    if (!summary) return 'not-found';
    if (summary.status !== 'stuck' || this.sagas.has(sagaId)) return 'not-stuck';
    return (await this.resume(sagaId, 'retry')) ? 'retrying' : 'not-stuck';
  }

  /** Whether this process is running the saga right now. */
  isRunning(sagaId: string): boolean {
    return this.sagas.has(sagaId);
  }

  /**
   * Compensates a running saga (operator action). False when this process is not running it;
   * a saga already compensating or at its pivot ignores steps it no longer needs.
   */
  abort(sagaId: string, reason: string): boolean {
    const saga = this.sagas.get(sagaId);
    if (!saga) return false;
    saga.actor.send({ type: 'saga.abort', reason });
    return true;
  }

  /**
   * Stops acting on a saga another instance now owns (its lease was taken over): no record is
   * written — the new owner resumes it from the log.
   */
  abandon(sagaId: string, reason: string): void {
    const saga = this.sagas.get(sagaId);
    if (!saga) return;
    saga.logger.warn({ reason }, 'saga abandoned: another instance owns it now');
    saga.abandon(reason);
  }

  /** Stops every actor without recording anything: what was in flight is left for recovery. */
  stopAll(): void {
    for (const saga of [...this.sagas.values()]) saga.abandon('sagamesh stopped');
  }

  private launch(definition: SagaDefinition, input: SagaInput, requestId?: string): SagaExecution {
    const { sagaId } = input;
    const traceId = traceIdOf(input.traceparent);
    const logger = this.deps.logger.child({
      saga_id: sagaId,
      saga: definition.name,
      ...(requestId ? { request_id: requestId } : {}),
      ...(traceId ? { trace_id: traceId } : {}),
    });
    if (!input.recovered) logger.info({ definition_version: definition.version }, 'saga started');
    this.observer.sagaStarted(definition.name);
    const startedAt = this.deps.clock.now();
    const actor = createActor(this.machineFor(definition), { input, clock: this.deps.clock });

    let resolveSteps: (value: 'pivot' | 'final') => void = () => undefined;
    const stepsDone = new Promise<'pivot' | 'final'>((resolve) => (resolveSteps = resolve));
    let resolveSettled: (result: SagaResult) => void = () => undefined;
    const settled = new Promise<SagaResult>((resolve) => (resolveSettled = resolve));
    const result = (context: SagaContext, status: SagaResult['status'], error?: ErrorInfo): SagaResult => ({
      sagaId,
      definition: definition.name,
      status,
      ...(context.failedStep ? { failedStep: context.failedStep } : {}),
      ...((error ?? context.error) ? { error: error ?? context.error } : {}),
      steps: summarize(context),
      scope: scopeOf(definition, context),
    });

    let previous = '';
    let done = false;
    const finish = (snapshot: SagaSnapshot, status: FinalState, error?: ErrorInfo): void => {
      if (done) return;
      done = true;
      subscription.unsubscribe();
      const outcome = result(snapshot.context, status, error);
      // Record the end before anyone answers the client with it; only then is the saga done here.
      this.deps.log
        .append(sagaId, { type: 'saga.finished', status })
        .then(
          () => {
            logger.info({ status, failed_step: outcome.failedStep, error: outcome.error }, 'saga finished');
            this.observer.sagaFinished(definition.name, status, this.deps.clock.now() - startedAt);
          },
          (err: unknown) =>
            logger.error({ err }, 'could not record the end of the saga; recovery will finish it'),
        )
        .finally(() => {
          this.sagas.delete(sagaId);
          resolveSteps('final');
          resolveSettled(outcome);
          if (input.recovered) this.deps.onRecovered?.(outcome, definition);
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
        // A bug in an action, not a participant's failure: stop here; recovery resumes it.
        logger.error({ err }, 'saga actor failed');
        const e = toSagameshError(err);
        abandon(`actor failed: ${e.code}`, { code: e.code, message: e.message });
      },
    });
    const abandon = (reason: string, error?: ErrorInfo): void => {
      if (done) return;
      done = true;
      subscription.unsubscribe();
      actor.stop();
      this.sagas.delete(sagaId);
      resolveSteps('final');
      resolveSettled(
        result(
          actor.getSnapshot().context,
          'abandoned',
          error ?? { code: ERRORS.LEASE_LOST.code, message: reason },
        ),
      );
    };
    const execution = new SagaExecution(sagaId, definition, actor, settled, stepsDone);
    this.sagas.set(sagaId, { actor, logger, execution, abandon });
    actor.start();
    return execution;
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
      .catch((err: unknown) => this.onStoreError(sagaId, err, logger));
  }

  /** A lost lease means another instance owns the saga now: stop acting on it at once. */
  private onStoreError(sagaId: string, err: unknown, logger: Logger): void {
    const e = toSagameshError(err);
    logger.error({ err: e, code: e.code }, 'saga log write failed');
    if (e.code === ERRORS.LEASE_LOST.code) this.abandon(sagaId, e.message);
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
    const logger = this.sagas.get(input.sagaId)?.logger ?? this.deps.logger;
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
    try {
      await this.deps.log.append(sagaId, {
        type: 'call.dispatched',
        step: input.step,
        kind,
        attempt,
        replay,
      });
    } catch (err) {
      // Not recorded, so not sent. A lost lease stops the saga here; anything else is retried.
      this.onStoreError(sagaId, err, logger);
      throw err;
    }
    const started = this.deps.clock.now();
    const report = (outcome: string): number => {
      const durationMs = this.deps.clock.now() - started;
      this.observer.callCompleted({
        definition: definition.name,
        step: input.step,
        kind,
        attempt,
        outcome,
        durationMs,
      });
      return durationMs;
    };
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
        report('aborted');
        throw err;
      }
      const errno = err instanceof CallNetworkError ? err.errno : undefined;
      output = classifyNetworkError(errno, err instanceof Error ? err.message : String(err), input.step);
    }
    await this.recordOutcome(input, output).catch((err: unknown) => {
      this.onStoreError(sagaId, err, logger);
      throw err;
    });
    const durationMs = report(output.outcome);
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
      replay: input.replay,
      outcome: output.outcome,
      ...(output.response ? { status: output.response.status } : {}),
      // Successful actions keep their response: compensations and answers read it after a restart.
      ...(output.response && output.outcome === 'success' && input.kind === 'action'
        ? { response: output.response }
        : {}),
      ...(output.error ? { error: output.error } : {}),
    });
  }
}
