import type { SagaDefinition } from '../../definition/definition';
import type { ChartNode } from '../../runtime/graph';
import { toMermaid } from '../../runtime/graph';
import type { ServedRecord } from '../saga-contents';
import type { SagaView } from '../timeline';
import { chartHtml } from './chart-html';
import { formatDuration, formatTime } from './format';
import { html } from './html';
import { page } from './layout';
import { timelineSvg } from './timeline-svg';

/** GET /ui/sagas/:id: one saga — facts, timeline, every call, its definition's state chart, raw log. */

export interface SagaPageInput {
  readonly view: SagaView;
  /** As served (admin/saga-contents.ts): redacted, and without contents when they are withheld. */
  readonly history: readonly ServedRecord[];
  readonly contents: 'shown' | 'withheld';
  /** The definition version the saga ran with, when it can still be found. */
  readonly definition?: SagaDefinition;
  readonly chart?: ChartNode;
}

/** The states the saga went through, as far as its log tells: to highlight in the chart. */
function visitedStates(view: SagaView): Set<string> {
  const visited = new Set(['saga.running']);
  for (const b of view.bars)
    visited.add(b.lane === 'action' ? `saga.running.${b.step}` : `saga.compensating.${b.step}`);
  if (view.marks.some((m) => m.label === 'compensating')) visited.add('saga.compensating');
  if (view.finished) visited.add(`saga.${view.status}`);
  return visited;
}

export function sagaPage(input: SagaPageInput): string {
  const { view, definition, chart } = input;
  const stepOrder = definition?.steps.map((s) => s.name) ?? [];
  const facts = html`<dl class="facts card">
    <dt>status</dt>
    <dd><span class="badge ${view.status}">${view.status}</span></dd>
    <dt>definition</dt>
    <dd>${view.definition} <span class="mono">@${view.version}</span></dd>
    ${
      view.request
        ? html`<dt>request</dt>
            <dd class="mono">${view.request.method} ${view.request.path}</dd>`
        : ''
    }
    ${
      view.parent
        ? html`<dt>parent</dt>
            <dd>
              <a class="mono" href="/ui/sagas/${encodeURIComponent(view.parent.sagaId)}"
                >${view.parent.sagaId}</a
              >
              step ${view.parent.step}
            </dd>`
        : ''
    }
    ${view.children.map(
      (c) =>
        html`<dt>child of ${c.step}</dt>
          <dd><a class="mono" href="/ui/sagas/${encodeURIComponent(c.sagaId)}">${c.sagaId}</a></dd>`,
    )}
    ${
      view.deadlineMs !== undefined
        ? html`<dt>deadline</dt>
            <dd>${formatDuration(view.deadlineMs)} (the parent's budget)</dd>`
        : ''
    }
    <dt>started (UTC)</dt>
    <dd>${formatTime(view.startedAt)}</dd>
    <dt>${view.finished ? 'took' : 'running for'}</dt>
    <dd>${formatDuration(view.endedAt - view.startedAt)}</dd>
    ${
      view.failedStep
        ? html`<dt>failed step</dt>
            <dd>${view.failedStep}</dd>`
        : ''
    }
    ${
      view.error
        ? html`<dt>error</dt>
            <dd class="error"><span class="mono">${view.error.code}</span> ${view.error.message}</dd>`
        : ''
    }
  </dl>`;
  const calls = html`<table class="calls">
    <thead>
      <tr>
        <th>step</th>
        <th>kind</th>
        <th>attempt</th>
        <th>start</th>
        <th>took</th>
        <th>outcome</th>
        <th>HTTP</th>
        <th>error</th>
      </tr>
    </thead>
    <tbody>
      ${view.bars.map(
        (b) =>
          html`<tr>
            <td>${b.step}</td>
            <td>${b.replay ? 'replay' : b.kind}</td>
            <td>${b.attempt}</td>
            <td>+${formatDuration(b.start - view.startedAt)}</td>
            <td>${formatDuration(b.end - b.start)}</td>
            <td>${b.outcome}</td>
            <td>${b.httpStatus ?? ''}</td>
            <td>${b.error ? `${b.error.code}: ${b.error.message}` : ''}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
  const chartSection = chart
    ? html`<h2>State chart of ${view.definition}@${view.version}</h2>
        ${chartHtml(chart, visitedStates(view))}
        <details>
          <summary>mermaid source</summary>
          <pre>${toMermaid(chart)}</pre>
        </details>`
    : html`<h2>State chart</h2>
        <div class="card empty">
          Definition ${view.definition}@${view.version} is no longer known to this instance.
        </div>`;
  // A link, not a form: the browser prompts for the token and keeps it out of the URL.
  const withheld =
    input.contents === 'withheld'
      ? html`<p class="card notice">
          The request and the steps' responses need the admin token.
          <a href="/ui/sagas/${encodeURIComponent(view.sagaId)}?contents=show">Show contents</a> (your browser
          asks for it: any user name, the token as password).
        </p>`
      : '';
  const body = html`<p><a href="/ui">← all sagas</a></p>
    <h1>Saga <span class="mono">${view.sagaId}</span></h1>
    ${withheld}${facts}
    <h2>Timeline</h2>
    ${timelineSvg(view, stepOrder)}
    <h2>Calls</h2>
    ${view.bars.length > 0 ? calls : html`<div class="card empty">No calls yet.</div>`} ${chartSection}
    <details>
      <summary>saga log records (${input.history.length})</summary>
      <pre>${JSON.stringify(input.history, null, 2)}</pre>
    </details>`;
  return page(`Saga ${view.sagaId}`, body, view.finished ? {} : { refreshSeconds: 2 });
}

/** The answer to "show contents" without the token: 401 with a Basic challenge, and this page. */
export function tokenPromptPage(sagaId: string): string {
  const body = html`<p><a href="/ui/sagas/${encodeURIComponent(sagaId)}">← saga ${sagaId}</a></p>
    <h1>The admin token is needed</h1>
    <p class="card">
      Saga contents are protected (SAGAMESH_ADMIN_PROTECT_CONTENTS). Reload and enter any user name and the
      admin token as password.
    </p>`;
  return page('Admin token needed', body);
}
