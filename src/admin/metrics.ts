import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { performance } from 'node:perf_hooks';
import type { Observer } from '../engine/observer';
import type { SagaLog } from '../runtime/journal';

/**
 * Every Prometheus metric sagamesh exports, named once, here (docs/metrics.md lists the same).
 * `Metrics` is the data path's Observer: the runner, the processor and the stream loop report to
 * it and never see prom-client. Each instance has its own registry, so two apps in one process
 * (tests) never share counters.
 */

export interface MetricsOptions {
  /** Sagas running in this process now (read at scrape time). */
  readonly inFlight: () => number;
  /** Definitions in force now (read at scrape time). */
  readonly definitionsLoaded: () => number;
  /** process_* and nodejs_* metrics from prom-client; default true. */
  readonly processMetrics?: boolean;
}

const SECONDS = (ms: number): number => ms / 1000;

export class Metrics implements Observer {
  readonly registry = new Registry();

  private readonly sagasStarted = new Counter({
    name: 'sagamesh_sagas_started_total',
    help: 'Sagas started (their start record written), by definition.',
    labelNames: ['definition'] as const,
    registers: [this.registry],
  });
  private readonly sagasFinished = new Counter({
    name: 'sagamesh_sagas_finished_total',
    help: 'Sagas ended, by definition and status: succeeded, compensated, stuck, or failed (refused before any step ran).',
    labelNames: ['definition', 'status'] as const,
    registers: [this.registry],
  });
  private readonly sagasRejected = new Counter({
    name: 'sagamesh_sagas_rejected_total',
    help: 'Requests that matched a saga but were refused before any step ran, by definition and error code.',
    labelNames: ['definition', 'code'] as const,
    registers: [this.registry],
  });
  private readonly sagaDuration = new Histogram({
    name: 'sagamesh_saga_duration_seconds',
    help: 'From the start record to the end of the saga, by definition and final status.',
    labelNames: ['definition', 'status'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly stepDuration = new Histogram({
    name: 'sagamesh_step_duration_seconds',
    help: 'One call of a step (action or compensation, each attempt), by definition, step, kind and outcome (success, rejected, retryable, aborted).',
    labelNames: ['definition', 'step', 'kind', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly stepRetries = new Counter({
    name: 'sagamesh_step_retries_total',
    help: 'Calls that were a retry (attempt 2 or later), by definition, step and kind.',
    labelNames: ['definition', 'step', 'kind'] as const,
    registers: [this.registry],
  });
  private readonly compensations = new Counter({
    name: 'sagamesh_compensations_total',
    help: 'Compensation calls (each attempt), by definition, step and outcome.',
    labelNames: ['definition', 'step', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly streamsOpened = new Counter({
    name: 'sagamesh_extproc_streams_opened_total',
    help: 'ext_proc streams Envoy opened (one per HTTP request on a route with the filter).',
    registers: [this.registry],
  });
  private readonly streamsClosed = new Counter({
    name: 'sagamesh_extproc_streams_closed_total',
    help: 'ext_proc streams that ended, by reason: ended, cancelled (normal when a request ends), error.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly streamsActive = new Gauge({
    name: 'sagamesh_extproc_streams_active',
    help: 'ext_proc streams open now.',
    registers: [this.registry],
  });
  private readonly reloads = new Counter({
    name: 'sagamesh_definition_reloads_total',
    help: 'Attempts to load a changed sagas directory, by result: applied, unchanged, rejected.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly reloadErrors = new Counter({
    name: 'sagamesh_definition_reload_errors_total',
    help: 'Problems found in rejected definition sets, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  private readonly storeDuration = new Histogram({
    name: 'sagamesh_store_operation_duration_seconds',
    help: 'Saga log operations, by operation (append, history, list, ...) and result (ok, error).',
    labelNames: ['operation', 'result'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  constructor(options: MetricsOptions) {
    new Gauge({
      name: 'sagamesh_sagas_in_flight',
      help: 'Sagas running in this process now.',
      registers: [this.registry],
      collect() {
        this.set(options.inFlight());
      },
    });
    new Gauge({
      name: 'sagamesh_definitions_loaded',
      help: 'Saga definitions in force now.',
      registers: [this.registry],
      collect() {
        this.set(options.definitionsLoaded());
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text for GET /metrics. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  // --- Observer

  streamOpened(): void {
    this.streamsOpened.inc();
    this.streamsActive.inc();
  }

  streamClosed(reason: 'ended' | 'cancelled' | 'error'): void {
    this.streamsClosed.inc({ reason });
    this.streamsActive.dec();
  }

  sagaRejected(definition: string, code: string): void {
    this.sagasRejected.inc({ definition, code });
    this.sagasFinished.inc({ definition, status: 'failed' });
  }

  sagaStarted(definition: string): void {
    this.sagasStarted.inc({ definition });
  }

  sagaFinished(definition: string, status: string, durationMs: number): void {
    this.sagasFinished.inc({ definition, status });
    this.sagaDuration.observe({ definition, status }, SECONDS(durationMs));
  }

  callCompleted(event: Parameters<Observer['callCompleted']>[0]): void {
    const { definition, step, kind, outcome } = event;
    this.stepDuration.observe({ definition, step, kind, outcome }, SECONDS(event.durationMs));
    if (event.attempt > 1) this.stepRetries.inc({ definition, step, kind });
    if (kind === 'compensation') this.compensations.inc({ definition, step, outcome });
  }

  definitionsReloaded(result: 'applied' | 'unchanged' | 'rejected', codes: readonly string[]): void {
    this.reloads.inc({ result });
    for (const code of codes) this.reloadErrors.inc({ code });
  }

  // --- the saga log

  /** Records how long one saga log operation took. */
  observeStore(operation: string, result: 'ok' | 'error', durationMs: number): void {
    this.storeDuration.observe({ operation, result }, SECONDS(durationMs));
  }
}

/**
 * The saga log with every asynchronous method timed into `sagamesh_store_operation_duration_seconds`.
 * A Proxy rather than a hand-written wrapper: the store interface grows (leases, keys, pruning) and
 * a method the decorator forgot would silently go untimed — or, worse, be missing. `now` is a
 * monotonic sub-millisecond timer: store calls are often far below a millisecond.
 */
export function timedSagaLog<T extends SagaLog>(
  log: T,
  metrics: Metrics,
  now: () => number = () => performance.now(),
): T {
  return new Proxy(log, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        const started = now();
        const result = method.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (v: unknown) => {
            metrics.observeStore(property, 'ok', now() - started);
            return v;
          },
          (err: unknown) => {
            metrics.observeStore(property, 'error', now() - started);
            throw err;
          },
        );
      };
    },
  });
}
