import type { StoredAnswer } from '../runtime/journal';
import type { SagaDefinition, TemplateScope } from '../definition/definition';
import type { ErrorInfo, FinalState, SagaContext, SagaMachineEvent, StepRun } from '../runtime/saga-state';

// A saga as its caller sees it while it runs (SagaExecution) and once it settled (SagaResult):
// what the ext_proc processor answers from. The runner creates these; nothing else does.

/** A running saga's machine as its execution reads and feeds it (the runner's SagaDriver). */
export interface RunningSaga {
  getSnapshot(): { readonly context: SagaContext };
  send(event: SagaMachineEvent): void;
}

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
  /**
   * `abandoned`: this process stopped acting on the saga — its lease was lost (another instance
   * resumes it), one of its records could not be written (this one resumes it from the log), or
   * sagamesh stopped (recovery resumes it).
   */
  readonly status: FinalState | 'abandoned';
  readonly failedStep?: string;
  readonly error?: ErrorInfo;
  readonly steps: readonly StepSummary[];
  /** Responses of the steps that succeeded, for the success answer's templates. */
  readonly scope: TemplateScope;
  /** The answer kept for the saga's Idempotency-Keys with its end: what its client must be told. */
  readonly answer?: StoredAnswer;
}

export function summarize(context: SagaContext): StepSummary[] {
  return Object.entries(context.steps).map(([name, run]) => ({
    name,
    status: run.status,
    attempts: run.attempts,
    ...(run.httpStatus !== undefined ? { httpStatus: run.httpStatus } : {}),
    compensation: run.compensation.status,
    ...(run.error ? { error: run.error } : {}),
  }));
}

/** The steps whose compensation gave up: what an operator of a stuck saga must look at. */
export function stuckSteps(result: Pick<SagaResult, 'steps'>): string[] {
  return result.steps.filter((s) => s.compensation === 'stuck').map((s) => s.name);
}

/** One running saga, as the ext_proc processor sees it. */
export class SagaExecution {
  readonly settled: Promise<SagaResult>;
  /** Resolves when the saga reaches its pivot (pivot mode) or its end, whichever is first. */
  readonly stepsDone: Promise<'pivot' | 'final'>;

  constructor(
    readonly sagaId: string,
    readonly definition: SagaDefinition,
    private readonly saga: RunningSaga,
    settled: Promise<SagaResult>,
    stepsDone: Promise<'pivot' | 'final'>,
  ) {
    this.settled = settled;
    this.stepsDone = stepsDone;
  }

  /** The scope as it is now: the success answer and upstream mutations render from it. */
  scope(): TemplateScope {
    return scopeOf(this.definition, this.saga.getSnapshot().context);
  }

  /** The steps as they are now. */
  steps(): StepSummary[] {
    return summarize(this.saga.getSnapshot().context);
  }

  /** Why the saga failed, and the step that failed it, once it has (it then compensates). */
  failure(): { readonly failedStep?: string; readonly error?: ErrorInfo } {
    const { failedStep, error } = this.saga.getSnapshot().context;
    return { ...(failedStep ? { failedStep } : {}), ...(error ? { error } : {}) };
  }

  upstreamResponded(status: number): void {
    this.saga.send({ type: 'saga.upstream.response', status });
  }

  upstreamFailed(message: string): void {
    this.saga.send({ type: 'saga.upstream.failed', message });
  }
}

export function scopeOf(definition: SagaDefinition, context: SagaContext): TemplateScope {
  const steps: Record<string, { response: NonNullable<StepRun['response']> }> = {};
  for (const [name, run] of Object.entries(context.steps))
    if (run.response) steps[name] = { response: run.response };
  return { request: context.request, steps, saga: { id: context.sagaId, name: definition.name } };
}
