import { ERRORS } from '../errors';
import type { Path, ProblemCollector } from './problems';
import { isRecord } from './schema';
import type { StepRead } from './template-compilation';

// The steps' dependsOn graph: run order, cycles, and which steps a step may read.

export interface StepGraph {
  /** Index of the first step with each name; later duplicates are reported and ignored. */
  readonly firstIndex: ReadonlyMap<string, number>;
  readonly deps: ReadonlyMap<string, readonly string[]>;
  /** Topological order, or undefined when the graph is broken (unknown dependency or cycle). */
  readonly order: readonly string[] | undefined;
}

/**
 * Builds the dependency graph from whatever steps have a name, so its problems show up even when
 * a step has other problems too.
 */
export function stepGraph(rawSteps: readonly unknown[], out: ProblemCollector): StepGraph {
  const firstIndex = new Map<string, number>();
  const deps = new Map<string, string[]>();
  rawSteps.forEach((raw, i) => {
    if (!isRecord(raw) || typeof raw.name !== 'string') return;
    if (firstIndex.has(raw.name)) {
      out.add(ERRORS.DEF_DUPLICATE, ['spec', 'steps', i, 'name'], `step name "${raw.name}" is used twice`);
      return;
    }
    firstIndex.set(raw.name, i);
    const list = Array.isArray(raw.dependsOn)
      ? raw.dependsOn.filter((d): d is string => typeof d === 'string')
      : [];
    deps.set(raw.name, list);
  });
  let broken = false;
  rawSteps.forEach((raw, i) => {
    if (!isRecord(raw) || typeof raw.name !== 'string' || firstIndex.get(raw.name) !== i) return;
    if (!Array.isArray(raw.dependsOn)) return;
    raw.dependsOn.forEach((dep: unknown, j) => {
      if (typeof dep !== 'string' || firstIndex.has(dep)) return;
      broken = true;
      const path = ['spec', 'steps', i, 'dependsOn', j];
      out.add(ERRORS.DEF_STEP_REFERENCE, path, `depends on "${dep}", but there is no such step`);
    });
  });
  const order = topologicalOrder(deps);
  if (order.length < deps.size) {
    reportCycles(deps, new Set(order), firstIndex, out);
    broken = true;
  }
  return { firstIndex, deps, order: broken ? undefined : order };
}

/** Kahn's algorithm; among the ready steps the earliest in the file goes first, so order is stable. */
function topologicalOrder(deps: ReadonlyMap<string, readonly string[]>): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  for (;;) {
    const next = [...deps].find(([n, ds]) => !done.has(n) && ds.every((d) => done.has(d) || !deps.has(d)));
    if (!next) return order;
    done.add(next[0]);
    order.push(next[0]);
  }
}

/** Each step left unordered is on a cycle or waits for one; report each cycle once. */
function reportCycles(
  deps: ReadonlyMap<string, readonly string[]>,
  ordered: ReadonlySet<string>,
  firstIndex: ReadonlyMap<string, number>,
  out: ProblemCollector,
): void {
  const reported = new Set<string>();
  for (const start of deps.keys()) {
    if (ordered.has(start) || reported.has(start)) continue;
    const cycle = shortestCycle(start, deps);
    if (!cycle) continue;
    for (const n of cycle) reported.add(n);
    const path = ['spec', 'steps', firstIndex.get(start) ?? 0, 'dependsOn'];
    const message =
      cycle.length === 1
        ? `step "${start}" depends on itself`
        : `dependency cycle: ${[...cycle, start].join(' → ')}`;
    out.add(ERRORS.DEF_CYCLE, path, message);
  }
}

/** Breadth-first search from `start` along dependencies back to `start`. */
function shortestCycle(start: string, deps: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i] ?? start;
    for (const dep of deps.get(node) ?? []) {
      if (dep === start) {
        const cycle = [node];
        for (let n = parent.get(node); n !== undefined; n = parent.get(n)) cycle.unshift(n);
        return cycle;
      }
      if (!parent.has(dep) && dep !== start && deps.has(dep)) {
        parent.set(dep, node);
        queue.push(dep);
      }
    }
  }
  return undefined;
}

/** Every step `name` waits for, directly or not. */
export function ancestors(name: string, deps: ReadonlyMap<string, readonly string[]>): Set<string> {
  const seen = new Set<string>();
  const stack = [...(deps.get(name) ?? [])];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(deps.get(n) ?? []));
  }
  return seen;
}

/**
 * A step may read only what is certain to exist when it runs: the steps it waits for and, in its
 * compensation, its own response. Reads must name steps literally so this can be checked.
 */
export function checkStepReads(
  step: string,
  reads: { readonly steps: readonly StepRead[]; readonly dynamic: readonly Path[] },
  allowed: ReadonlySet<string>,
  graph: StepGraph,
  kind: 'action' | 'compensation',
  out: ProblemCollector,
): void {
  for (const read of reads.steps) {
    const code = ERRORS.DEF_STEP_REFERENCE;
    if (!graph.firstIndex.has(read.step)) {
      out.add(code, read.path, `reads steps.${read.step}, but there is no step ${read.step}`);
    } else if (read.step === step && kind === 'action') {
      out.add(code, read.path, `an action cannot read its own step's response (only its compensation can)`);
    } else if (!allowed.has(read.step)) {
      out.add(code, read.path, `reads steps.${read.step}, but step ${step} does not depend on ${read.step}`);
    }
  }
  for (const path of reads.dynamic) {
    out.add(ERRORS.DEF_STEP_REFERENCE, path, 'a step request must read steps by name (steps.<name>...)');
  }
}
