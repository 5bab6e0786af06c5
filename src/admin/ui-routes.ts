import type { DefinitionSet } from '../definition/definition-set';
import { sagaChart } from '../runtime/graph';
import type { DefinitionCatalog } from './definition-catalog';
import type { Route } from './http';
import { parseListQuery } from './list-query';
import type { SagaQueries } from './sagas-routes';
import { sagaView } from './timeline';
import { listPage } from './ui/list-page';
import { sagaPage, tokenPromptPage } from './ui/saga-page';
import { BASIC_REALM } from './auth';
import type { FieldPath } from '../redaction';
import { servedHistory } from './saga-contents';
import { ERRORS, SagameshError } from '../errors';

/** The read-only web UI: server-rendered pages over the same data as the sagas API. */

export interface UiRouteDeps {
  readonly sagas: SagaQueries;
  readonly definitions: () => DefinitionSet;
  readonly catalog: DefinitionCatalog;
  readonly now: () => number;
  /** SAGAMESH_LOG_REDACT, split: redacted in every request body shown. */
  readonly redactFields: readonly FieldPath[];
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
        const contents = req.contents();
        // The page's "show contents" link: the browser asks for the token, sends it as Basic.
        if (contents === 'withheld' && req.query.get('contents') === 'show') {
          return {
            status: 401,
            html: tokenPromptPage(sagaId),
            headers: { 'www-authenticate': `Basic realm="${BASIC_REALM}", charset="UTF-8"` },
          };
        }
        const history = await deps.sagas.history(sagaId);
        const view = sagaView(history, deps.now());
        if (!view) throw new SagameshError(ERRORS.SAGA_NOT_FOUND, sagaId);
        const definition = await deps.catalog.find(view.definition, view.version);
        const html = sagaPage({
          view,
          history: servedHistory(history, contents, deps.redactFields),
          contents,
          ...(definition ? { definition, chart: sagaChart(definition) } : {}),
        });
        return { status: 200, html };
      },
    },
  ];
}
