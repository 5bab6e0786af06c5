import type { DefinitionSet } from '../saga/definition-set';
import { sagaChart } from '../saga/graph';
import type { DefinitionCatalog } from './definition-catalog';
import type { Route } from './http';
import { parseListQuery } from './list-query';
import type { SagaQueries } from './sagas-routes';
import { sagaView } from './timeline';
import { listPage } from './ui/list-page';
import { sagaPage } from './ui/saga-page';
import { ERRORS, SagameshError } from '../errors';

/** The read-only web UI: server-rendered pages over the same data as the sagas API. */

export interface UiRouteDeps {
  readonly sagas: SagaQueries;
  readonly definitions: () => DefinitionSet;
  readonly catalog: DefinitionCatalog;
  readonly now: () => number;
}

export function uiRoutes(deps: UiRouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/ui',
      handler: async (req) => {
        const filters = parseListQuery(req.query);
        const sagas = await deps.sagas.list(filters);
        const names = deps
          .definitions()
          .list()
          .map((d) => d.name);
        return { status: 200, html: listPage(sagas, filters, names) };
      },
    },
    {
      method: 'GET',
      path: '/ui/sagas/:id',
      handler: async (req) => {
        const sagaId = req.params['id'] ?? '';
        const history = await deps.sagas.history(sagaId);
        const view = sagaView(history, deps.now());
        if (!view) throw new SagameshError(ERRORS.SAGA_NOT_FOUND, sagaId);
        const definition = await deps.catalog.find(view.definition, view.version);
        const html = sagaPage({
          view,
          history,
          ...(definition ? { definition, chart: sagaChart(definition) } : {}),
        });
        return { status: 200, html };
      },
    },
  ];
}
