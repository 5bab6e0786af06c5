import type jsonata from 'jsonata';

/**
 * What one evaluation of an expression may do. Definitions are written by operators, but request
 * data drives them: a `[1..1e9]`, a runaway recursion, a `$pad` to 200 million characters or a
 * string doubled until V8 gives up must fail one saga, never stall or kill the process. V8 ends the
 * process outright ("invalid size") when an array of more than ~134 million elements is needed —
 * `$length` of a long string asks for one — so sizes are bounded before anything that large is
 * built, not caught afterwards.
 */
export const EXPRESSION_LIMITS = Object.freeze({
  /** Checked between evaluation steps; every step is bounded by the limits below. */
  timeoutMs: 1000,
  depth: 500,
  /** Items of any array or sequence an evaluation step yields. */
  items: 100_000,
  /** Characters of any string an evaluation step yields (the size of a participant's answer). */
  stringLength: 1_048_576,
  /** Strings (2 bytes a character) and arrays (8 bytes an item) that one evaluation yields, in all. */
  budgetBytes: 32 * 1_048_576,
});

const L = EXPRESSION_LIMITS;

/** An evaluation went past one of EXPRESSION_LIMITS; expression.ts codes it EXPRESSION_LIMIT. */
export class ExpressionLimitError extends Error {}

/** JSONata's codes for its own guardrails: timeout, depth, range size, sequence size. */
export const JSONATA_LIMIT_CODES: ReadonlySet<string> = new Set(['D1012', 'D1011', 'D2014', 'D2015']);

/** The options every expression is compiled with, but for the regex engine (expression.ts). */
export const JSONATA_GUARDRAILS = { timeout: L.timeoutMs, stack: L.depth, sequence: L.items };

/**
 * The per-evaluation budget travels in the evaluation's bindings under a name no expression can
 * spell: a JSONata variable name stops at a space.
 */
const BUDGET = 'sagamesh budget';

class Budget {
  private left = L.budgetBytes;

  spend(bytes: number): void {
    this.left -= bytes;
    if (this.left < 0) {
      throw new ExpressionLimitError(
        `built more than ${L.budgetBytes / 1_048_576} MiB of strings and arrays in one evaluation`,
      );
    }
  }
}

/** A fresh budget, as a binding for one evaluation. */
export function evaluationBudget(): Record<string, unknown> {
  return { [BUDGET]: new Budget() };
}

/**
 * Checks every evaluation step's result (expression-guards.ts makes JSONata call it), so `&`,
 * ranges and every built-in are covered: no string or array past its limit, and the evaluation's
 * budget charged.
 */
export function checkStep(
  _expr: unknown,
  _input: unknown,
  environment: jsonata.Environment,
  result: unknown,
): void {
  let bytes: number;
  if (typeof result === 'string') {
    if (result.length > L.stringLength) throw tooLong(result.length);
    bytes = result.length * 2;
  } else if (Array.isArray(result)) {
    if (result.length > L.items) throw tooMany(result.length);
    bytes = result.length * 8;
  } else return;
  // Every frame of an evaluation (lambdas' too) descends from the one that holds its bindings.
  const budget: unknown = environment.lookup(BUDGET);
  if (budget instanceof Budget) budget.spend(bytes);
}

export const tooLong = (n: number): ExpressionLimitError =>
  new ExpressionLimitError(`built a string of ${n} characters; the limit is ${L.stringLength}`);
const tooMany = (n: number): ExpressionLimitError =>
  new ExpressionLimitError(`built an array of ${n} items; the limit is ${L.items}`);
