import type { ListOptions, SagaSummary } from '../../runtime/journal';
import { SAGA_STATUSES } from '../../runtime/journal';
import { formatDuration, formatTime } from './format';
import { html } from './html';
import { page } from './layout';

/** GET /ui: the most recent sagas, newest first, filtered by status and definition. */
export function listPage(
  sagas: readonly SagaSummary[],
  filters: ListOptions,
  definitionNames: readonly string[],
): string {
  const option = (value: string, selected: string | undefined, label = value) =>
    html`<option value="${value}" ${value === (selected ?? '') ? html` selected` : ''}>${label}</option>`;
  const form = html`<form class="filters" method="get" action="/ui">
    <label
      >status<select name="status">
        ${option('', filters.status, 'any')}${SAGA_STATUSES.map((s) => option(s, filters.status))}
      </select></label
    >
    <label
      >definition<select name="definition">
        ${option('', filters.definition, 'any')}${definitionNames.map((d) => option(d, filters.definition))}
      </select></label
    >
    <label>limit<input name="limit" type="number" min="1" max="1000" value="${filters.limit ?? 50}" /></label>
    <button type="submit">Show</button>
  </form>`;
  const rows = sagas.map(
    (s) =>
      html`<tr class="saga-row" data-saga-id="${s.sagaId}">
        <td class="mono"><a href="/ui/sagas/${encodeURIComponent(s.sagaId)}">${s.sagaId}</a></td>
        <td>
          ${s.definition}${s.version ? html` <span class="mono" style="color:#5d6675">@${s.version}</span>` : ''}
        </td>
        <td><span class="badge ${s.status}">${s.status}</span></td>
        <td>${formatTime(s.startedAt)}</td>
        <td>${formatDuration(s.updatedAt - s.startedAt)}</td>
      </tr>`,
  );
  const table =
    sagas.length === 0
      ? html`<div class="card empty">No sagas match.</div>`
      : html`<table>
          <thead>
            <tr>
              <th>saga</th>
              <th>definition</th>
              <th>status</th>
              <th>started (UTC)</th>
              <th>took</th>
            </tr>
          </thead>
          <tbody>
            ${rows}
          </tbody>
        </table>`;
  return page(
    'Sagas',
    html`<h1>Recent sagas</h1>
      ${form}${table}`,
  );
}
