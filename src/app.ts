import type { Clock } from './clock';
import { systemClock } from './clock';
import type { Config } from './config/config';
import { SagaProcessor } from './extproc/saga-processor';
import { ExtProcServer } from './extproc/server';
import type { Logger } from './logger';
import { createHttpCaller } from './participants/step-caller';
import { DefinitionSet } from './saga/definition-set';
import { loadDefinitions } from './saga/loader';
import { SagaRunner } from './saga/runner';
import { MemorySagaLog } from './saga-log/memory';
import type { SagaLog } from './saga-log/saga-log';

/**
 * Wires one sagamesh instance: definitions, saga log, step caller, runner, ext_proc server.
 * Everything it needs is passed in; nothing here reads process.env or the wall clock directly.
 */
export interface AppDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly sagaLog?: SagaLog;
}

export interface App {
  /** Loads and validates the definitions, then listens. Rejects with a SagameshError on bad input. */
  start(): Promise<{ grpcPort: number }>;
  /** Graceful stop: stop taking streams, let open ones finish within the grace period. */
  stop(): Promise<void>;
  readonly runner: SagaRunner;
  readonly sagaLog: SagaLog;
  definitions(): DefinitionSet;
}

export function createApp(config: Config, deps: AppDeps): App {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  const sagaLog = deps.sagaLog ?? new MemorySagaLog(clock);
  const http = createHttpCaller({ egressUrl: config.egressUrl });
  const runner = new SagaRunner({ log: sagaLog, http, clock, logger });
  let definitions = new DefinitionSet([]);
  const server = new ExtProcServer({
    logger,
    processorFactory: (context) =>
      new SagaProcessor(
        { definitions: () => definitions, runner, answerBudgetMs: config.answerBudgetMs },
        context,
      ),
  });

  return {
    runner,
    sagaLog,
    definitions: () => definitions,
    async start() {
      definitions = new DefinitionSet(
        await loadDefinitions(config.sagasDir, { maxDeadlineMs: config.maxDeadlineMs }),
      );
      logger.info(
        { sagas: definitions.list().map((d) => `${d.name}@${d.version} ${d.match.method} ${d.match.path}`) },
        'saga definitions loaded',
      );
      const grpcPort = await server.listen(config.grpcAddress);
      logger.info({ address: config.grpcAddress, egress: config.egressUrl }, 'ext_proc server listening');
      return { grpcPort };
    },
    async stop() {
      await server.stop(config.shutdownGraceMs);
      runner.stopAll();
      await http.close();
      await sagaLog.close();
    },
  };
}
