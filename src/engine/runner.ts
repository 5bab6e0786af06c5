import { randomUUID } from 'node:crypto';
import type { SnapshotFrom } from 'xstate';
import type { Clock } from '../clock';
import { ERRORS, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import type { Observer } from './observer';
import { NOOP_OBSERVER } from './observer';
import type { CallCancellation, HttpCaller } from './http-caller';
import { rebuild } from '../runtime/recovery';
import type {
  KeyHolder,
  KeyRequest,
  SagaEvent,
  SagaLog,
  SagaParent,
  SagaStatus,
  StoredAnswer,
} from '../runtime/journal';
import type { SagaDefinition, TemplateScope } from '../definition/definition';
import type { SagaResult } from './execution';
import { SagaExecution, scopeOf, stuckSteps, summarize } from './execution';
import type { SagaMachine } from '../runtime/machine';
import type {
  CallInput,
  CallOutput,
  ErrorInfo,
  FinalState,
  SagaContext,
  SagaInput,
} from '../runtime/saga-state';
import { buildSagaMachine } from '../runtime/machine';
import { CallsInFlight } from './calls-in-flight';
import { MachineHost, SagaDriver } from './saga-driver';
import { callStep } from './call-step';
import { Redrives } from './redrive';
import { answerFromLog } from './answer-from-log';

/**
 * Runs sagas: each a SagaDriver stepping its definition's machine (built once per definition, with
 * one actor scope its sagas share: saga-driver.ts) and its call port, CallsInFlight over the one
 * I/O function, `callStep`, passed in here (the port holds the calls in flight and their timers).
 * `callStep` records the dispatch in the saga log before it sends anything, and the outcome before
 * the machine may act on it. A saga whose record cannot be written stops there: with its lease
 * lost, another instance owns it; otherwise it is resumed from the log after a backoff (redrive.ts).
 */

export type { SagaExecution, SagaResult, StepSummary } from './execution';

/** Why a saga is resumed from its journal; recorded in its `saga.recovered` record. */
export type SagaResumeReason = Extract<SagaEvent, { type: 'saga.recovered' }>['reason'];

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
  /**
   * The answer a settled saga's client gets (extproc/answers.ts), or undefined when sagamesh does
   * not own it (a pivot saga's success is the upstream's). Kept with `saga.finished` for the
   * saga's Idempotency-Keys, when the saga has any (or may have: a resumed one).
   */
  readonly answer?: (definition: SagaDefinition, result: SagaResult) => Promise<StoredAnswer | undefined>;
  /** Called when a resumed saga ends. */
  readonly onRecovered?: (result: SagaResult, definition: SagaDefinition) => void;
  /** Recorded in `saga.recovered` records: which instance resumed a saga. */
  readonly instanceId?: string;
}

interface Running {
  readonly driver: SagaDriver;
  readonly logger: Logger;
  readonly execution: SagaExecution;
  readonly abandon: (reason: string, error?: ErrorInfo) => void;
  /** Undoing a saga that had succeeded (`spec.undo`). */
  readonly undo: boolean;
}

/**
 * What an undo request finds (`undo`): the saga unknown (to this definition); not undoable (it
 * did not succeed, or runs); being undone — here (its execution) or by another instance; or undone
 * already, compensated or stuck.
 */
export type UndoOutcome =
  | { readonly kind: 'not-found' }
  | { readonly kind: 'not-undoable'; readonly status: SagaStatus; readonly reason: string }
  | { readonly kind: 'undoing'; readonly execution?: SagaExecution }
  | { readonly kind: 'undone'; readonly status: 'compensated' | 'stuck' };

export interface StartMeta {
  readonly traceparent?: string;
  readonly requestId?: string;
  /** A parent saga's budget for this one (ms): caps the definition's deadline. */
  readonly budgetMs?: number;
  readonly parent?: SagaParent;
}

/** The client's Idempotency-Key is another saga's: nothing was started. */
export interface KeyHeld {
  readonly held: KeyHolder;
}

type SagaSnapshot = SnapshotFrom<SagaMachine>;

/** What a saga id an undo names may look like (ids are UUIDs; tests use other short ids). */
const SAGA_ID = /^[\w.:-]{1,128}$/;

/** The W3C trace id inside a traceparent header, if it is well formed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const m = traceparent ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent.trim()) : null;
  return m?.[1];
}

export class SagaRunner {
  private readonly machines = new WeakMap<SagaDefinition, { host: MachineHost; calls: CallsInFlight }>();
  private readonly sagas = new Map<string, Running>();
  private readonly savedVersions = new Set<string>();
  private readonly newId: () => string;
  private readonly observer: Observer;
  private readonly redrives: Redrives;
  /** Undo requests being started here, by saga: a second one waits for the first. */
  private readonly undoStarts = new Map<string, Promise<UndoOutcome>>();

  constructor(private readonly deps: RunnerDeps) {
    this.newId = deps.newId ?? randomUUID;
    this.observer = deps.observer ?? NOOP_OBSERVER;
    this.redrives = new Redrives({
      clock: deps.clock,
      random: deps.random ?? Math.random,
      logger: deps.logger,
      resume: (sagaId) => this.resume(sagaId, 'store-error'),
    });
  }

  /** Sagas in flight in this process. */
  get inFlight(): number {
    return this.sagas.size;
  }

  /** Ids of the sagas this process is running. */
  runningIds(): string[] {
    return [...this.sagas.keys()];
  }

  /**
   * Records the saga's start (and its definition's source, once per version), then starts its
   * machine. The start record is written before any step can be dispatched; if it cannot be
   * written, nothing runs and the error propagates. With `key`, the client's Idempotency-Key is
   * reserved in the same write; if another saga holds it, nothing starts and the holder comes back.
   */
  async start(
    definition: SagaDefinition,
    request: TemplateScope['request'],
    meta: StartMeta & { readonly key: KeyRequest },
  ): Promise<SagaExecution | KeyHeld>;
  async start(
    definition: SagaDefinition,
    request: TemplateScope['request'],
    meta?: StartMeta,
  ): Promise<SagaExecution>;
  async start(
    definition: SagaDefinition,
    request: TemplateScope['request'],
    meta: StartMeta & { readonly key?: KeyRequest } = {},
  ): Promise<SagaExecution | KeyHeld> {
    const sagaId = this.newId();
    const deadlineMs =
      meta.budgetMs !== undefined && meta.budgetMs < definition.deadlineMs ? meta.budgetMs : undefined;
    if (!this.savedVersions.has(definition.version)) {
      await this.deps.log.saveDefinition({
        name: definition.name,
        version: definition.version,
        file: definition.file,
        source: definition.source,
      });
      this.savedVersions.add(definition.version);
    }
    const started = await this.deps.log.start(
      sagaId,
      {
        type: 'saga.started',
        definition: definition.name,
        version: definition.version,
        request,
        ...(meta.traceparent ? { traceparent: meta.traceparent } : {}),
        ...(deadlineMs !== undefined ? { deadlineMs } : {}),
        ...(meta.parent ? { parent: meta.parent } : {}),
      },
      meta.key,
    );
    if ('held' in started) return started;
    return this.launch(
      definition,
      {
        sagaId,
        request,
        ...(meta.traceparent ? { traceparent: meta.traceparent } : {}),
        ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      },
      { requestId: meta.requestId, keepAnswer: meta.key !== undefined },
    );
  }

  /**
   * Resumes an unfinished saga from its journal (after a restart, a lease takeover or a failed
   * write) or, with reason `retry`, re-drives a stuck saga's compensations. Backward recovery: the
   * saga never runs forward again. Resolves undefined when there is nothing to resume. When the
   * store fails a restart's or takeover's resumption, it is tried again later (redrive.ts).
   */
  async resume(sagaId: string, reason: SagaResumeReason): Promise<SagaExecution | undefined> {
    if (this.sagas.has(sagaId)) return this.sagas.get(sagaId)?.execution;
    try {
      return await this.resumeFromLog(sagaId, reason);
    } catch (err) {
      if (reason === 'restart' || reason === 'takeover') this.redriveUnlessLost(sagaId, err);
      throw err;
    }
  }

  private async resumeFromLog(sagaId: string, reason: SagaResumeReason): Promise<SagaExecution | undefined> {
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
    logger.warn(
      { reason, steps: Object.keys(rebuilt.steps), undo: rebuilt.undo },
      'saga resumed from the log',
    );
    // Whether its client used an Idempotency-Key is not in the journal: keep the answer anyway —
    // except for an undo, whose end never replaces the answer the saga's success gave its keys.
    return this.launch(
      definition,
      {
        sagaId,
        request: started.request,
        ...(started.traceparent ? { traceparent: started.traceparent } : {}),
        ...(started.deadlineMs !== undefined ? { deadlineMs: started.deadlineMs } : {}),
        recovered: {
          steps: rebuilt.steps,
          ...(rebuilt.failedStep ? { failedStep: rebuilt.failedStep } : {}),
          ...(rebuilt.error ? { error: rebuilt.error } : {}),
        },
      },
      { keepAnswer: !rebuilt.undo, undo: rebuilt.undo === true },
    );
  }

  /**
   * Undoes a saga of `definition` that succeeded (its `spec.undo`): records the undo — the record
   * that re-opens a finished saga, claiming it in a shared store — then runs its compensations in
   * reverse dependency order, as recovery does, with the version it ran with. The answer its
   * success gave its Idempotency-Keys stays theirs. Concurrent undos of one saga start it once.
   */
  undo(definition: SagaDefinition, sagaId: string): Promise<UndoOutcome> {
    const running = this.sagas.get(sagaId);
    if (running) {
      return Promise.resolve(
        running.undo
          ? { kind: 'undoing', execution: running.execution }
          : { kind: 'not-undoable', status: 'running', reason: 'it is still running' },
      );
    }
    let starting = this.undoStarts.get(sagaId);
    if (!starting) {
      starting = this.startUndo(definition, sagaId).finally(() => this.undoStarts.delete(sagaId));
      this.undoStarts.set(sagaId, starting);
    }
    return starting;
  }

  private async startUndo(definition: SagaDefinition, sagaId: string): Promise<UndoOutcome> {
    // Ids are UUIDs (newId): anything else names no saga, and is not looked up.
    if (!SAGA_ID.test(sagaId)) return { kind: 'not-found' };
    const rebuilt = rebuild(await this.deps.log.history(sagaId));
    if (!rebuilt || rebuilt.started.definition !== definition.name) return { kind: 'not-found' };
    if (rebuilt.undo) {
      return rebuilt.finished === 'compensated' || rebuilt.finished === 'stuck'
        ? { kind: 'undone', status: rebuilt.finished }
        : { kind: 'undoing' };
    }
    if (rebuilt.finished !== 'succeeded') {
      const status = rebuilt.finished ?? (rebuilt.error ? 'compensating' : 'running');
      const reason = rebuilt.finished
        ? `it ended ${rebuilt.finished}, not succeeded`
        : `it is still ${status}`;
      return { kind: 'not-undoable', status, reason };
    }
    const { started } = rebuilt;
    const ran = await this.deps.resolveDefinition(started.version, started.definition);
    if (!ran) {
      return {
        kind: 'not-undoable',
        status: 'succeeded',
        reason: `its definition version ${started.version} is unknown`,
      };
    }
    const error = { code: ERRORS.SAGA_UNDONE.code, message: 'undone on request' };
    try {
      await this.deps.log.append(sagaId, { type: 'saga.compensating', error, undo: true });
    } catch (err) {
      // Another instance re-opened it first: that one undoes it.
      if (toSagameshError(err).code === ERRORS.LEASE_LOST.code) return { kind: 'undoing' };
      throw err;
    }
    const execution = this.launch(
      ran,
      {
        sagaId,
        request: started.request,
        ...(started.traceparent ? { traceparent: started.traceparent } : {}),
        recovered: { steps: rebuilt.steps, error },
      },
      { keepAnswer: false, undo: true },
    );
    return { kind: 'undoing', execution };
  }

  /** The answer of a saga that finished without one kept for its keys (answer-from-log.ts). */
  answerFromLog(sagaId: string): Promise<StoredAnswer | undefined> {
    return answerFromLog(this.deps, sagaId);
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
    saga.driver.send({ type: 'saga.abort', reason });
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

  /** Stops every saga without recording anything: what was in flight is left for recovery. */
  stopAll(): void {
    this.redrives.cancelAll();
    for (const saga of [...this.sagas.values()]) saga.abandon('sagamesh stopped');
  }

  private launch(
    definition: SagaDefinition,
    input: SagaInput,
    opts: { readonly requestId?: string | undefined; readonly keepAnswer: boolean; readonly undo?: boolean },
  ): SagaExecution {
    const { sagaId } = input;
    const { requestId } = opts;
    const traceId = traceIdOf(input.traceparent);
    const logger = this.deps.logger.child({
      saga_id: sagaId,
      saga: definition.name,
      ...(requestId ? { request_id: requestId } : {}),
      ...(traceId ? { trace_id: traceId } : {}),
    });
    if (!input.recovered) logger.info({ definition_version: definition.version }, 'saga started');
    if (opts.undo) logger.info({ definition_version: definition.version }, 'saga undo started');
    this.observer.sagaStarted(definition.name);
    const startedAt = this.deps.clock.now();
    const { host, calls } = this.machineFor(definition);

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
      const outcome = result(snapshot.context, status, error);
      // Record the end before anyone answers the client with it; only then is the saga done here.
      // The answer for its Idempotency-Keys is written with it: there is no moment between the two.
      this.answerToKeep(definition, outcome, opts.keepAnswer, logger)
        .then(async (answer) => {
          await this.deps.log.finish(sagaId, { type: 'saga.finished', status }, answer);
          return answer ? { ...outcome, answer } : outcome;
        })
        .then(
          (settledWith) => {
            if (status === 'stuck') {
              // Something stays applied that the saga meant to undo: an operator must act (alert on it).
              logger.error(
                {
                  status,
                  code: ERRORS.COMPENSATION_EXHAUSTED.code,
                  stuck_steps: stuckSteps(outcome),
                  failed_step: outcome.failedStep,
                  error: outcome.error,
                },
                'saga finished',
              );
            } else {
              logger.info({ status, failed_step: outcome.failedStep, error: outcome.error }, 'saga finished');
            }
            this.observer.sagaFinished(definition.name, status, this.deps.clock.now() - startedAt);
            this.sagas.delete(sagaId);
            resolveSteps('final');
            resolveSettled(settledWith);
            if (input.recovered) this.deps.onRecovered?.(settledWith, definition);
          },
          (err: unknown) => {
            // Not recorded, so not told: the client hears "still running" and the log finishes it.
            const e = toSagameshError(err);
            logger.error({ err: e, code: e.code }, 'could not record the end of the saga');
            this.sagas.delete(sagaId);
            resolveSteps('final');
            resolveSettled(result(snapshot.context, 'abandoned', { code: e.code, message: e.message }));
            this.redriveUnlessLost(sagaId, e);
          },
        );
    };
    const driver = new SagaDriver(host, input, this.deps.clock, {
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
        logger.error({ err }, 'saga machine failed');
        const e = toSagameshError(err);
        abandon(`machine failed: ${e.code}`, { code: e.code, message: e.message });
      },
    });
    const abandon = (reason: string, error?: ErrorInfo): void => {
      if (done) return;
      done = true;
      driver.stop();
      calls.abortAll(driver);
      this.sagas.delete(sagaId);
      resolveSteps('final');
      resolveSettled(
        result(
          driver.getSnapshot().context,
          'abandoned',
          error ?? { code: ERRORS.LEASE_LOST.code, message: reason },
        ),
      );
    };
    const execution = new SagaExecution(sagaId, definition, driver, settled, stepsDone);
    this.sagas.set(sagaId, { driver, logger, execution, abandon, undo: opts.undo === true });
    driver.start();
    return execution;
  }

  /** The answer kept for the saga's keys, if it may have any; one that cannot be built is not kept. */
  private async answerToKeep(
    definition: SagaDefinition,
    outcome: SagaResult,
    keep: boolean,
    logger: Logger,
  ): Promise<StoredAnswer | undefined> {
    if (!keep || !this.deps.answer) return undefined;
    try {
      return await this.deps.answer(definition, outcome);
    } catch (err) {
      logger.error({ err }, 'could not build the answer to keep for the Idempotency-Key');
      return undefined;
    }
  }

  private recordCompensating(sagaId: string, context: SagaContext, logger: Logger): void {
    const error = context.error ?? { code: ERRORS.INTERNAL.code, message: 'compensating' };
    // An undo's start is recorded before it runs (undo): nothing more to say.
    if (error.code === ERRORS.SAGA_UNDONE.code) return;
    logger.warn({ failed_step: context.failedStep, error }, 'saga compensating');
    this.deps.log
      .append(sagaId, {
        type: 'saga.compensating',
        ...(context.failedStep ? { failedStep: context.failedStep } : {}),
        error,
      })
      .catch((err: unknown) => this.onStoreError(sagaId, err, logger));
  }

  /**
   * A record of the saga could not be written: stop acting on it at once, since the log no longer
   * says what it did. A lost lease leaves it to its new owner; any other failure resumes it from
   * the log later.
   */
  private onStoreError(sagaId: string, err: unknown, logger: Logger): void {
    const e = toSagameshError(err);
    logger.error({ err: e, code: e.code }, 'saga log write failed');
    if (e.code === ERRORS.LEASE_LOST.code) {
      this.abandon(sagaId, e.message);
      return;
    }
    const saga = this.sagas.get(sagaId);
    if (!saga) return;
    saga.logger.warn({ code: e.code }, 'saga stopped: resumed from the log once the store writes again');
    saga.abandon(e.message, { code: e.code, message: e.message });
    this.redrives.schedule(sagaId);
  }

  private redriveUnlessLost(sagaId: string, err: unknown): void {
    if (toSagameshError(err).code !== ERRORS.LEASE_LOST.code) this.redrives.schedule(sagaId);
  }

  /** A definition's machine, built once, and the port that sends its sagas' calls. */
  private machineFor(definition: SagaDefinition): { host: MachineHost; calls: CallsInFlight } {
    let built = this.machines.get(definition);
    if (!built) {
      const calls = new CallsInFlight(
        (input: CallInput, cancellation: CallCancellation): Promise<CallOutput> => {
          const logger = this.sagas.get(input.sagaId)?.logger ?? this.deps.logger;
          const { log, http, clock } = this.deps;
          const onStoreError = (err: unknown): void => this.onStoreError(input.sagaId, err, logger);
          return callStep(
            { log, http, clock, observer: this.observer, logger, onStoreError },
            definition,
            input,
            cancellation,
          );
        },
        this.deps.clock,
      );
      built = { host: new MachineHost(buildSagaMachine(definition, { calls })), calls };
      this.machines.set(definition, built);
    }
    return built;
  }
}
