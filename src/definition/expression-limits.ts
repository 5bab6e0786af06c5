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
  /**
   * Items of all arrays and sequences one evaluation yields, in all. JSONata's own walks (a boolean
   * cast, a flatten, a lookup) visit every item of what a value shares: `$map` of 1,188 items each
   * yielding the same 1,190-item array is 1.4 M items to its boolean cast, 0.8 s that no time check
   * interrupts. Found by fuzzing (seed -625259347).
   */
  itemsBudget: 500_000,
  /**
   * Characters of JSON the value of one evaluation takes (numbers, booleans and null counted as one
   * character each): JSONata shares values, so what is cheap to build can be huge to write out.
   */
  valueLength: 8 * 1_048_576,
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
  private bytesLeft = L.budgetBytes;
  private itemsLeft = L.itemsBudget;

  spend(bytes: number, items: number): void {
    this.bytesLeft -= bytes;
    this.itemsLeft -= items;
    if (this.itemsLeft < 0) {
      throw new ExpressionLimitError(`built more than ${L.itemsBudget} array items in one evaluation`);
    }
    if (this.bytesLeft < 0) {
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
  expr: unknown,
  _input: unknown,
  environment: jsonata.Environment,
  result: unknown,
): void {
  // Only a number (or a path's sequence of one) can end a range; most steps skip the lookup.
  if ((typeof result === 'number' || Array.isArray(result)) && RANGE_ENDS.has(expr as object)) {
    checkRangeEnd(result);
  }
  let bytes: number;
  let items = 0;
  if (typeof result === 'string') {
    if (result.length > L.stringLength) throw tooLong(result.length);
    bytes = result.length * 2;
  } else if (Array.isArray(result)) {
    if (result.length > L.items) throw tooMany(result.length);
    items = result.length;
    bytes = items * 8;
  } else return;
  // Every frame of an evaluation (lambdas' too) descends from the one that holds its bindings.
  const budget: unknown = environment.lookup(BUDGET);
  if (budget instanceof Budget) budget.spend(bytes, items);
}

/**
 * The operands of every `..` in a compiled expression (expression-guards.ts marks them). JSONata
 * builds a range with `item++`, which stops moving past 2^53: `[2^53..2^53+2]` passes its size
 * check (3 items) and then loops, growing the array until V8 ends the process ("invalid size
 * error", found by fuzzing). Both ends must be safe integers; JSONata refuses other non-integers.
 */
export const RANGE_ENDS = new WeakSet<object>();

/** A path yields its one number as a sequence of one, which JSONata unwraps after this check. */
function checkRangeEnd(result: unknown): void {
  const end: unknown = Array.isArray(result) && result.length === 1 ? result[0] : result;
  if (typeof end === 'number' && Number.isInteger(end) && !Number.isSafeInteger(end)) {
    throw new ExpressionLimitError(
      `a range ends at ${end}, past the integers JavaScript counts exactly (±${Number.MAX_SAFE_INTEGER})`,
    );
  }
}

export const tooLong = (n: number): ExpressionLimitError =>
  new ExpressionLimitError(`built a string of ${n} characters; the limit is ${L.stringLength}`);
const tooMany = (n: number): ExpressionLimitError =>
  new ExpressionLimitError(`built an array of ${n} items; the limit is ${L.items}`);

/**
 * Whether `value` written as JSON is at most `limit` characters, counting at least one character
 * per value (so the walk stops after at most `limit` of them, however much the value shares).
 */
export function jsonFits(value: unknown, limit: number): boolean {
  let size = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const v = pending.pop();
    if (typeof v === 'string') size += v.length + 2;
    else if (typeof v !== 'object' || v === null) size += 1;
    else if (Array.isArray(v)) {
      size += 1 + v.length;
      if (size > limit) return false;
      for (let i = 0; i < v.length; i++) pending.push(v[i]);
    } else {
      size += 1;
      // for…in rather than Object.entries: no array of pairs per object (5× faster on 1 M objects).
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        size += k.length + 4;
        pending.push((v as Record<string, unknown>)[k]);
      }
    }
    if (size > limit) return false;
  }
  return true;
}
