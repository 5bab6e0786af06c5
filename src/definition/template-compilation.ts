import type { KnownExpressions } from './expression';
import type { Path } from './problems';
import { RequestReadsCollector } from './request-reads';

// What compiling one template finds, shared by template.ts, url-template.ts and expression.ts.

/** A compile-time problem; the loader turns `kind` into a DEF_* code and `path` into a line. */
export interface TemplateProblem {
  readonly path: Path;
  readonly kind: 'expression' | 'url' | 'value';
  readonly message: string;
}

/** A `steps.<name>` read and the field that holds it, for the loader's reference checks. */
export interface StepRead {
  readonly step: string;
  readonly path: Path;
}

export interface Compiled<T> {
  /** Undefined when there are problems. */
  readonly template: T | undefined;
  readonly problems: readonly TemplateProblem[];
  readonly reads: readonly StepRead[];
  /** Fields that read `steps` other than by a literal name (`steps.*`, `$lookup(steps, x)`, `$`). */
  readonly dynamicStepReads: readonly Path[];
}

/** What one compile call finds: problems, step reads and what of the request is read. */
export class Compilation {
  readonly problems: TemplateProblem[] = [];
  /** `known`: the load's precompiled expressions, if it has them. */
  constructor(readonly known?: KnownExpressions) {}

  readonly reads: StepRead[] = [];
  readonly dynamicStepReads: Path[] = [];
  readsBody = false;
  readonly request = new RequestReadsCollector();

  result<T>(build: () => T | undefined): Compiled<T> {
    const template = this.problems.length === 0 ? build() : undefined;
    return { template, problems: this.problems, reads: this.reads, dynamicStepReads: this.dynamicStepReads };
  }

  get stepRefs(): readonly string[] {
    return Object.freeze([...new Set(this.reads.map((r) => r.step))]);
  }
}
