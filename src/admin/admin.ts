import type { Clock } from '../clock';
import type { Config } from '../config/config';
import type { Logger } from '../logger';
import { parseFieldPaths } from '../redaction';
import type { SagaDefinition } from '../definition/definition';
import type { DefinitionSet } from '../definition/definition-set';
import type { SagaLog } from '../runtime/journal';
import { DefinitionCatalog } from './definition-catalog';
import { definitionsRoutes } from './definitions-routes';
import { healthRoutes } from './health-routes';
import type { Metrics } from './metrics';
import { Readiness } from './readiness';
import type { SagaOperations } from './sagas-routes';
import { sagasRoutes } from './sagas-routes';
import { AdminServer } from './server';
import { uiRoutes } from './ui-routes';

/**
 * The admin side of one sagamesh instance: readiness, and the HTTP server with every admin route
 * (health, metrics, sagas API, definitions, UI). app.ts creates it, listens before loading the
 * definitions (so /readyz can say "loading"), and marks it loaded once the ext_proc server listens.
 */

export interface AdminDeps {
  readonly config: Pick<Config, 'adminAddress' | 'adminToken'> &
    Partial<Pick<Config, 'adminProtectContents' | 'logRedact'>>;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly sagaLog: Pick<SagaLog, 'history' | 'list'> & { ping?: () => Promise<void> };
  readonly operations: SagaOperations;
  readonly definitions: () => DefinitionSet;
  /** Finds a definition version no longer in force (the app's lookup through the saga log). */
  readonly resolveDefinition?: (version: string, name: string) => Promise<SagaDefinition | undefined>;
  readonly isDraining?: () => boolean;
}

export interface Admin {
  readonly readiness: Readiness;
  /** Binds the configured address; resolves with the bound port. */
  listen(): Promise<number>;
  close(): Promise<void>;
}

export function createAdmin(deps: AdminDeps): Admin {
  const { sagaLog } = deps;
  const readiness = new Readiness({
    ...(sagaLog.ping ? { ping: () => sagaLog.ping?.() ?? Promise.resolve() } : {}),
    ...(deps.isDraining ? { isDraining: deps.isDraining } : {}),
  });
  const catalog = new DefinitionCatalog({
    current: deps.definitions,
    ...(deps.resolveDefinition ? { resolve: deps.resolveDefinition } : {}),
  });
  const now = (): number => deps.clock.now();
  const redactFields = parseFieldPaths(deps.config.logRedact ?? []);
  const server = new AdminServer({
    logger: deps.logger.child({ component: 'admin' }),
    token: deps.config.adminToken,
    protectContents: deps.config.adminProtectContents ?? false,
    routes: [
      ...healthRoutes({ readiness, metrics: deps.metrics }),
      ...sagasRoutes({ sagas: sagaLog, operations: deps.operations, now, redactFields }),
      ...definitionsRoutes({ definitions: deps.definitions, catalog }),
      ...uiRoutes({ sagas: sagaLog, definitions: deps.definitions, catalog, now, redactFields }),
    ],
  });
  return {
    readiness,
    async listen() {
      const port = await server.listen(deps.config.adminAddress);
      deps.logger.info(
        {
          address: deps.config.adminAddress,
          port,
          mutating: deps.config.adminToken ? 'token' : 'refused',
          contents: deps.config.adminProtectContents ? 'token' : 'open',
        },
        'admin server listening',
      );
      return port;
    },
    close: () => server.close(),
  };
}
