import type { Admin } from './admin/admin';
import { createAdmin } from './admin/admin';
import { Metrics, timedSagaLog } from './admin/metrics';
import type { Readiness } from './admin/readiness';
import type { Clock } from './clock';
import { systemClock } from './clock';
import type { Config } from './config/config';
import { describeStore } from './config/store-url';
import { answerToKeep } from './extproc/answers';
import { SagaProcessor } from './extproc/saga-processor';
import { ExtProcServer } from './extproc/server';
import type { Logger } from './logger';
import type { Observer } from './engine/observer';
import { createH2cCaller } from './participants/h2c-caller';
import { createHttpCaller } from './participants/step-caller';
import type { SagaDefinition } from './definition/definition';
import { DefinitionSet } from './definition/definition-set';
import { loadDefinitionText } from './definition/loader';
import { loadDefinitionsOffThread } from './definition/offthread-load';
import { SagaRunner } from './engine/runner';
import { DefinitionsWatcher, problemCodes } from './definition/watcher';
import { parseFieldPaths } from './redaction';
import { Maintenance } from './saga-log/maintenance';
import { openSagaLog } from './saga-log/open';
import type { SagaLog } from './runtime/journal';

/**
 * Wires one sagamesh instance: saga log, definitions, step caller, runner, ext_proc server,
 * recovery and the log's maintenance. Everything it needs is passed in; nothing here reads
 * process.env.
 */
export interface AppDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Overrides the configured store (tests). */
  readonly sagaLog?: SagaLog;
  readonly observer?: Observer;
}

export interface App {
  /** Loads and validates the definitions, listens, then resumes unfinished sagas. Rejects with a SagameshError on bad input. */
  start(): Promise<{ grpcPort: number; adminPort: number }>;
  /**
   * Graceful stop: new saga requests get 503 + Retry-After, in-flight sagas get the grace period
   * to finish, what is left stays in the saga log for recovery.
   */
  stop(): Promise<void>;
  readonly runner: SagaRunner;
  readonly sagaLog: SagaLog;
  readonly draining: boolean;
  definitions(): DefinitionSet;
  /** What GET /readyz reports; it follows `draining`. */
  readonly readiness: Readiness;
  readonly metrics: Metrics;
}

/** Opens the saga log (coded errors: STORE_UNAVAILABLE, STORE_CORRUPT) and builds the app. */
export async function createApp(config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  // Metrics observe the data path (unless a test brings its own observer) and time the saga log.
  const metrics = new Metrics({
    inFlight: () => runner.inFlight,
    definitionsLoaded: () => definitions.size,
  });
  const observer = deps.observer ?? metrics;
  const sagaLog = timedSagaLog(
    deps.sagaLog ??
      (await openSagaLog(config.store, {
        clock,
        instanceId: config.instanceId,
        leaseTtlMs: config.leaseTtlMs,
      })),
    metrics,
  );
  logger.info({ store: describeStore(config.store), instance: config.instanceId }, 'saga log open');

  let definitions = new DefinitionSet([]);
  /** Definition versions no longer in the current set but still needed by resumed sagas. */
  const older = new Map<string, SagaDefinition>();
  const resolveDefinition = async (version: string, name: string): Promise<SagaDefinition | undefined> => {
    const current = definitions.get(name);
    if (current?.version === version) return current;
    const cached = older.get(version);
    if (cached) return cached;
    const stored = await sagaLog.loadDefinition(version);
    if (!stored) return undefined;
    const { definition } = loadDefinitionText(stored.file, stored.source, {
      maxDeadlineMs: config.maxDeadlineMs,
    });
    if (definition) older.set(version, definition);
    return definition;
  };

  const http =
    config.egressProtocol === 'h2c'
      ? createH2cCaller({ egressUrl: config.egressUrl, maxBodyDepth: config.maxBodyDepth })
      : createHttpCaller({
          egressUrl: config.egressUrl,
          connections: config.egressConnections,
          maxBodyDepth: config.maxBodyDepth,
        });
  const runner: SagaRunner = new SagaRunner({
    log: sagaLog,
    http,
    clock,
    logger,
    observer,
    instanceId: config.instanceId,
    resolveDefinition,
    // A client may come back with its Idempotency-Key: the answer is kept with the saga's end.
    answer: answerToKeep,
  });
  let draining = false;
  const redactFields = parseFieldPaths(config.logRedact);
  const server = new ExtProcServer({
    logger,
    observer,
    // The body plus room for the headers message (Envoy's header limit is 60 KiB by default).
    maxMessageBytes: config.maxBodyBytes + 1024 * 1024,
    processorFactory: (context) =>
      new SagaProcessor(
        {
          definitions: () => definitions,
          runner,
          answerBudgetMs: config.answerBudgetMs,
          observer,
          sagaLog,
          clock,
          idempotencyRetentionMs: config.idempotencyRetentionMs,
          isDraining: () => draining,
          maxInFlight: config.maxInFlight,
          maxBodyBytes: config.maxBodyBytes,
          redactFields,
          bodyLimits: { maxDepth: config.maxBodyDepth, maxValues: config.maxBodyValues },
        },
        context,
      ),
  });
  const maintenance = new Maintenance({
    log: sagaLog,
    runner,
    clock,
    logger,
    leases: config.store.kind === 'postgres' || config.store.kind === 'etcd',
    leaseTtlMs: config.leaseTtlMs,
    retentionMs: config.retentionMs,
    idempotencyRetentionMs: config.idempotencyRetentionMs,
  });
  // Hot reload: a changed sagas directory is validated whole, then swapped in for new requests.
  // Loads are checked in a worker thread, so a large or broken set never holds up the requests.
  const load = () => loadDefinitionsOffThread(config.sagasDir, { maxDeadlineMs: config.maxDeadlineMs });
  const watcher = new DefinitionsWatcher({
    dir: config.sagasDir,
    load,
    current: () => definitions.list(),
    apply: (loaded) => {
      definitions = new DefinitionSet(loaded);
    },
    onReload: (outcome) =>
      observer.definitionsReloaded(
        outcome.result,
        outcome.result === 'rejected' ? problemCodes(outcome.error) : [],
      ),
    logger,
    debounceMs: config.reloadDebounceMs,
  });
  const admin: Admin = createAdmin({
    config,
    logger,
    clock,
    metrics,
    sagaLog,
    operations: runner,
    definitions: () => definitions,
    resolveDefinition,
    isDraining: () => draining,
  });

  return {
    runner,
    sagaLog,
    get draining() {
      return draining;
    },
    definitions: () => definitions,
    readiness: admin.readiness,
    metrics,
    async start() {
      // Admin first: /healthz answers and /readyz says "loading" while the rest starts.
      const adminPort = await admin.listen();
      definitions = new DefinitionSet(await load());
      logger.info(
        { sagas: definitions.list().map((d) => `${d.name}@${d.version} ${d.match.method} ${d.match.path}`) },
        'saga definitions loaded',
      );
      watcher.start();
      const grpcPort = await server.listen(config.grpcAddress);
      logger.info({ address: config.grpcAddress, egress: config.egressUrl }, 'ext_proc server listening');
      await maintenance.prune();
      await maintenance.recover('restart');
      maintenance.start();
      admin.readiness.markLoaded();
      return { grpcPort, adminPort };
    },
    async stop() {
      draining = true;
      logger.info({ in_flight: runner.inFlight, grace_ms: config.shutdownGraceMs }, 'draining');
      const drainStarted = clock.now();
      await waitForSagas(runner, clock, config.shutdownGraceMs);
      // Linger a moment, still answering 503, so callers racing the shutdown get the documented
      // answer rather than a broken stream (Envoy, failing closed, would turn that into a 500).
      const left = config.shutdownGraceMs - (clock.now() - drainStarted);
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(DRAIN_LINGER_MS, left))));
      await server.stop(Math.min(1000, config.shutdownGraceMs));
      maintenance.stop();
      if (runner.inFlight > 0)
        logger.warn({ left: runner.runningIds() }, 'stopping with sagas in flight; recovery resumes them');
      runner.stopAll();
      await watcher.stop();
      await admin.close();
      await http.close();
      await sagaLog.close();
    },
  };
}

/** How long a draining instance keeps answering 503 after its last saga finished. */
const DRAIN_LINGER_MS = 1000;

/** Resolves when no saga is in flight, or after `graceMs`. */
async function waitForSagas(runner: SagaRunner, clock: Clock, graceMs: number): Promise<void> {
  const deadline = clock.now() + graceMs;
  while (runner.inFlight > 0 && clock.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
