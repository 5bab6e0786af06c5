import type { SagaDefinition } from '../definition/definition';
import { buildSagaMachine } from './machine';

/**
 * A saga's state chart, read off the machine the server runs (`buildSagaMachine`), never modelled
 * a second time: `sagamesh graph` prints it as mermaid or Graphviz dot, and the admin UI draws it.
 * Ids are the machine's state ids (`saga.running.hotel.calling`).
 */

export interface ChartTransition {
  /**
   * What fires it, for people: `saga.abort`, `after 10000ms (deadline)`, `answer: action.hotel`,
   * `timeout 2000ms: action.hotel`, `always`, …
   */
  readonly label: string;
  readonly guard?: string;
  readonly targets: readonly string[];
}

export interface ChartNode {
  readonly id: string;
  readonly key: string;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Id of the initial child of a compound state. */
  readonly initial?: string;
  /** The calls the state sends on entry, by id (`action.hotel`); leaving the state cancels them. */
  readonly calls: readonly string[];
  readonly transitions: readonly ChartTransition[];
  readonly children: readonly ChartNode[];
}

/** The structural slice of XState v5's StateNode this module reads. */
interface MachineNode {
  readonly id: string;
  readonly key: string;
  readonly type: ChartNode['type'];
  readonly states: Readonly<Record<string, MachineNode>>;
  readonly initial?: { readonly target: readonly MachineNode[] } | undefined;
  readonly entry: readonly unknown[];
  readonly transitions: ReadonlyMap<string, readonly MachineTransition[]>;
  readonly always?: readonly MachineTransition[] | undefined;
}
interface MachineTransition {
  readonly eventType: string;
  readonly target?: readonly MachineNode[] | undefined;
  readonly guard?: unknown;
}

/** What labels need from the definition: its deadline, and each call's timeout by call id. */
interface Timing {
  readonly deadlineMs: number;
  readonly timeouts: ReadonlyMap<string, number>;
}

export function sagaChart(definition: SagaDefinition): ChartNode {
  const machine = buildSagaMachine(definition);
  const timeouts = new Map<string, number>();
  for (const step of definition.steps) {
    timeouts.set(`action.${step.name}`, step.action.timeoutMs);
    if (step.compensation) {
      timeouts.set(`compensation.${step.name}`, step.compensation.timeoutMs);
      timeouts.set(`resolve.${step.name}`, step.compensation.timeoutMs);
    }
  }
  return chartOf(machine.root, { deadlineMs: definition.deadlineMs, timeouts });
}

function chartOf(node: MachineNode, timing: Timing): ChartNode {
  const transitions: ChartTransition[] = [];
  for (const [eventType, list] of node.transitions) {
    for (const t of list) transitions.push(transition(labelOf(eventType, node.id, timing), t));
  }
  for (const t of node.always ?? []) transitions.push(transition('always', t));
  const initial = node.type === 'compound' ? node.initial?.target[0]?.id : undefined;
  return {
    id: node.id,
    key: node.key,
    type: node.type,
    ...(initial ? { initial } : {}),
    calls: node.entry.flatMap(callOf),
    transitions,
    children: Object.values(node.states).map((child) => chartOf(child, timing)),
  };
}

/** The call a `dispatch` entry action sends (machine.ts), as `kind.step`. */
function callOf(action: unknown): string[] {
  if (typeof action !== 'object' || action === null) return [];
  const { type, params } = action as { type?: unknown; params?: { kind?: unknown; step?: unknown } };
  if (type !== 'dispatch' || typeof params?.kind !== 'string' || typeof params.step !== 'string') return [];
  return [`${params.kind}.${params.step}`];
}

function transition(label: string, t: MachineTransition): ChartTransition {
  const guard = guardName(t.guard);
  return { label, ...(guard ? { guard } : {}), targets: (t.target ?? []).map((n) => n.id) };
}

/** XState's internal event types, said the way the definition says them. */
function labelOf(eventType: string, stateId: string, { deadlineMs, timeouts }: Timing): string {
  const afterPrefix = 'xstate.after.';
  if (eventType.startsWith(afterPrefix) && eventType.endsWith(`.${stateId}`)) {
    const delay = eventType.slice(afterPrefix.length, -(stateId.length + 1));
    // The deadline is per saga (a parent's budget may shorten it): the definition's is the most.
    if (delay === 'saga.deadline') return `after ${deadlineMs}ms (deadline)`;
    return /^\d+$/.test(delay) ? `after ${delay}ms` : `after ${delay}`;
  }
  // A call's timeout (machine.ts `timeoutEvent`): its timer runs in the runner's call port.
  if (eventType.startsWith('timeout.')) {
    const call = eventType.slice('timeout.'.length);
    return `timeout ${timeouts.get(call) ?? '?'}ms: ${call}`;
  }
  for (const [prefix, say] of [
    ['call.', 'answer: '],
    ['xstate.done.actor.', 'done: '],
    ['xstate.error.actor.', 'error: '],
  ] as const) {
    if (eventType.startsWith(prefix)) return `${say}${eventType.slice(prefix.length)}`;
  }
  if (eventType.startsWith('xstate.done.state.')) return 'done';
  return eventType;
}

function guardName(guard: unknown): string | undefined {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard && typeof guard.type === 'string') {
    return guard.type;
  }
  return typeof guard === 'function' ? guard.name || 'guard' : undefined;
}

/** Every node, depth first, root included. */
export function chartNodes(root: ChartNode): ChartNode[] {
  return [root, ...root.children.flatMap(chartNodes)];
}

// --- mermaid stateDiagram-v2

/** `saga.running.hotel.calling` → `running_hotel_calling`: mermaid ids are plain words. */
const mermaidId = (id: string): string => id.replace(/^saga\.?/, '').replace(/[^\w]/g, '_') || 'saga';
/** Mermaid labels end at a newline and choke on a few characters; keep them plain. */
const mermaidLabel = (t: ChartTransition): string =>
  `${t.label}${t.guard ? ` [${t.guard}]` : ''}`.replace(/[:;#{}]/g, ' ').replace(/\s+/g, ' ');

export function toMermaid(root: ChartNode): string {
  // Mermaid places a state where its id first appears, so each edge goes inside the block of the
  // innermost state that holds both of its ends.
  const parents = parentMap(root);
  const edgesIn = new Map<string, string[]>();
  for (const node of chartNodes(root)) {
    const id = mermaidId(node.id);
    if (node.type === 'final') push(edgesIn, parents.get(node.id) ?? root.id, `${id} --> [*]`);
    for (const t of node.transitions) {
      for (const target of t.targets) {
        const edge = `${id} --> ${mermaidId(target)} : ${mermaidLabel(t)}`;
        push(edgesIn, commonContainer(node.id, target, parents, root.id), edge);
      }
    }
  }
  const lines = ['stateDiagram-v2'];
  const body = (node: ChartNode, indent: string): void => {
    if (node.initial) lines.push(`${indent}[*] --> ${mermaidId(node.initial)}`);
    node.children.forEach((child, i) => {
      if (node.type === 'parallel' && i > 0) lines.push(`${indent}--`);
      const id = mermaidId(child.id);
      if (child.children.length === 0) {
        lines.push(`${indent}state "${child.key}" as ${id}`);
        return;
      }
      lines.push(`${indent}state "${child.key}" as ${id} {`);
      body(child, `${indent}  `);
      lines.push(`${indent}}`);
    });
    for (const edge of edgesIn.get(node.id) ?? []) lines.push(`${indent}${edge}`);
  };
  body(root, '  ');
  return `${lines.join('\n')}\n`;
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function parentMap(root: ChartNode): Map<string, string> {
  const parents = new Map<string, string>();
  for (const node of chartNodes(root)) for (const child of node.children) parents.set(child.id, node.id);
  return parents;
}

/** The innermost compound state that strictly contains both `a` and `b`. */
function commonContainer(a: string, b: string, parents: ReadonlyMap<string, string>, rootId: string): string {
  const ancestors = (id: string): string[] => {
    const out: string[] = [];
    for (let p = parents.get(id); p !== undefined; p = parents.get(p)) out.push(p);
    return out;
  };
  const ofB = new Set(ancestors(b));
  return ancestors(a).find((p) => ofB.has(p)) ?? rootId;
}

// --- Graphviz dot

const dotString = (s: string): string => JSON.stringify(s);
const clusterId = (id: string): string => dotString(`cluster_${id}`);
/** A compound state is drawn as a cluster; edges to or from it attach to an invisible anchor inside. */
const anchorOf = (id: string): string => dotString(`${id}#`);

export function toDot(root: ChartNode): string {
  const compound = new Set(
    chartNodes(root)
      .filter((n) => n.children.length > 0)
      .map((n) => n.id),
  );
  const lines = [
    `digraph ${dotString(root.id)} {`,
    '  compound=true; rankdir=LR; node [shape=box, style=rounded, fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  const edges: string[] = [];
  const endpoint = (id: string, end: 'ltail' | 'lhead'): { node: string; attr: string } =>
    compound.has(id)
      ? { node: anchorOf(id), attr: `${end}=${clusterId(id)}` }
      : { node: dotString(id), attr: '' };
  const initialMark = (id: string, initial: string, indent: string): void => {
    const start = dotString(`${id}#initial`);
    lines.push(`${indent}${start} [shape=point, width=0.08];`);
    const to = endpoint(initial, 'lhead');
    edges.push(`${start} -> ${to.node}${to.attr ? ` [${to.attr}]` : ''};`);
  };
  const declare = (node: ChartNode, indent: string): void => {
    if (node.children.length > 0) {
      const style = node.type === 'parallel' ? 'dashed' : 'rounded';
      lines.push(`${indent}subgraph ${clusterId(node.id)} {`);
      lines.push(`${indent}  label=${dotString(node.key)}; style=${style};`);
      lines.push(`${indent}  ${anchorOf(node.id)} [shape=point, style=invis, width=0];`);
      if (node.initial) initialMark(node.id, node.initial, `${indent}  `);
      for (const child of node.children) declare(child, `${indent}  `);
      lines.push(`${indent}}`);
    } else {
      const shape = node.type === 'final' ? ', peripheries=2' : '';
      lines.push(`${indent}${dotString(node.id)} [label=${dotString(node.key)}${shape}];`);
    }
    for (const t of node.transitions) {
      const from = endpoint(node.id, 'ltail');
      for (const target of t.targets) {
        const to = endpoint(target, 'lhead');
        const label = `${t.label}${t.guard ? ` [${t.guard}]` : ''}`;
        const attrs = [`label=${dotString(label)}`, from.attr, to.attr].filter(Boolean).join(', ');
        edges.push(`${from.node} -> ${to.node} [${attrs}];`);
      }
    }
  };
  if (root.initial) initialMark(root.id, root.initial, '  ');
  for (const child of root.children) declare(child, '  ');
  lines.push(...edges.map((e) => `  ${e}`), '}');
  return `${lines.join('\n')}\n`;
}
