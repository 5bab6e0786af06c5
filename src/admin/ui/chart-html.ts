import type { ChartNode, ChartTransition } from '../../runtime/graph';
import type { Html } from './html';
import { html } from './html';

/**
 * A state chart as nested boxes, Harel style: a compound state holds its children, a parallel
 * state's regions sit side by side between dashed lines, a final state has a double border, and
 * each state lists its transitions. No layout engine needed and nothing to run in the browser.
 */

function targetName(target: string, from: ChartNode, parentId: string | undefined): string {
  if (target === from.id) return 'itself';
  if (parentId && target.startsWith(`${parentId}.`)) return target.slice(parentId.length + 1);
  return target.replace(/^saga\./, '');
}

function transitionItem(t: ChartTransition, node: ChartNode, parentId: string | undefined): Html {
  const targets = t.targets.map((target) => targetName(target, node, parentId)).join(', ') || '(stays)';
  return html`<li>${t.label}${t.guard ? ` [${t.guard}]` : ''} → <b>${targets}</b></li>`;
}

function stateBox(node: ChartNode, parent: ChartNode | undefined, visited: ReadonlySet<string>): Html {
  const classes = [
    'state',
    node.type,
    ...(parent?.initial === node.id ? ['initial'] : []),
    ...(visited.has(node.id) ? ['visited'] : []),
  ].join(' ');
  const kind =
    node.type === 'atomic' ? (node.calls.length > 0 ? `calls ${node.calls.join(', ')}` : '') : node.type;
  return html`<div class="${classes}" data-state="${node.id}">
    <div class="name">${node.key}${kind ? html`<span class="kind">${kind}</span>` : ''}</div>
    ${
      node.transitions.length > 0
        ? html`<ul>
            ${node.transitions.map((t) => transitionItem(t, node, parent?.id))}
          </ul>`
        : ''
    }
    ${node.children.length > 0 ? html`<div class="children">${node.children.map((c) => stateBox(c, node, visited))}</div>` : ''}
  </div>`;
}

/** `visited`: state ids to highlight (the states a saga went through). */
export function chartHtml(root: ChartNode, visited: ReadonlySet<string> = new Set()): Html {
  return html`<div class="chart">${stateBox(root, undefined, visited)}</div>`;
}
