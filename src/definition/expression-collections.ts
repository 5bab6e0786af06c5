import { EXPRESSION_LIMITS, ExpressionLimitError } from './expression-limits';

/**
 * `$sort` and `$distinct` as expressions get them (expression-guards.ts binds these in place of
 * JSONata's own): the same results, in time that grows with n log n and n. JSONata's `$sort` is a
 * merge sort that copies the rest of the array at every step and keeps the copies alive down an
 * async recursion, with no time check between steps when it sorts without a function: 73,626
 * strings took 4 GB and V8 ended the process. Its `$distinct` compares every pair: minutes for
 * 100,000 values. Found by fuzzing.
 */

/** JSONata's sequences are arrays flagged `sequence: true`; a result keeps its input's flag. */
function like(input: readonly unknown[], items: unknown[]): unknown[] {
  return (input as { sequence?: unknown }).sequence === true
    ? Object.assign(items, { sequence: true })
    : items;
}

/** Comparisons `$distinct` may make between objects and arrays, and what they may visit, in all. */
const DISTINCT_STEPS = 2_000_000;

type Comparator = (left: unknown, right: unknown) => unknown;

/**
 * JSONata's `$sort(array, function?)`: without a function, numbers or strings in ascending order
 * (else D3070); with one, `function($l, $r)` true puts `$r` first. Both stable, like JSONata's.
 */
export async function sortValues(
  this: unknown,
  array: unknown[] | undefined,
  comparator?: Comparator,
): Promise<unknown[] | undefined> {
  if (array === undefined || array.length <= 1) return array;
  if (comparator === undefined) {
    const numbers = array.every((v) => typeof v === 'number');
    if (!numbers && !array.every((v) => typeof v === 'string')) {
      // JSONata's own error for it; its evaluate() writes the message for the code.
      throw Object.assign(new Error('D3070'), { code: 'D3070', index: 1 });
    }
    // Array#sort is stable; (a > b) - (a < b) is JSONata's `a > b` order for numbers and strings.
    return like(
      array,
      [...array].sort(
        (a, b) => Number((a as string) > (b as string)) - Number((a as string) < (b as string)),
      ),
    );
  }
  // Bottom-up merge: one buffer, each comparison a call of the function (so the time limit, checked
  // in its evaluation, applies).
  const n = array.length;
  let from = [...array];
  let to = new Array<unknown>(n);
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        to[k++] = (await comparator.call(this, from[i], from[j])) ? from[j++] : from[i++];
      }
      while (i < mid) to[k++] = from[i++];
      while (j < hi) to[k++] = from[j++];
    }
    [from, to] = [to, from];
  }
  return like(array, from);
}

/**
 * JSONata's `$distinct(array)`: the first of each value, compared deeply (objects by their keys in
 * any order). Numbers, strings, booleans and null go through a Set. Objects and arrays are grouped
 * by a key of their first level (keys and plain values: deep-equal values share it), and compared
 * deeply only within a group, within DISTINCT_STEPS — 5,000 distinct `{ "b": i }` are 5,000 groups.
 */
export function distinctValues(array: unknown): unknown {
  if (!Array.isArray(array) || array.length <= 1) return array;
  const seen = new Set<unknown>();
  const groups = new Map<string, object[]>();
  const keys = new Map<object, string>(); // one key per object, however often it is repeated
  const out: unknown[] = [];
  const budget = { left: DISTINCT_STEPS };
  for (const value of array as unknown[]) {
    if (typeof value !== 'object' || value === null) {
      if (!seen.has(value)) {
        seen.add(value);
        out.push(value);
      }
      continue;
    }
    let key = keys.get(value);
    if (key === undefined) keys.set(value, (key = firstLevelKey(value)));
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [value]);
    else if (!group.some((kept) => deepEqual(value, kept, budget))) group.push(value);
    else continue;
    out.push(value);
  }
  return like(array as unknown[], out);
}

/** What deep-equal values have in common at their first level: kind, keys, plain values. */
function firstLevelKey(value: object): string {
  const plain = (v: unknown): string =>
    typeof v === 'object' && v !== null ? (Array.isArray(v) ? '[' : '{') : `${typeof v}:${String(v)}`;
  if (Array.isArray(value)) return `a${value.length}\u0000${value.map(plain).join('\u0000')}`;
  const names = Object.getOwnPropertyNames(value).sort();
  return `o\u0000${names.map((k) => `${k}\u0001${plain(Reflect.get(value, k))}`).join('\u0000')}`;
}

/** JSONata's isDeepEqual, counting what it visits against `budget`. */
function deepEqual(a: unknown, b: unknown, budget: { left: number }): boolean {
  if (--budget.left < 0) {
    throw new ExpressionLimitError(
      `$distinct compared more than ${DISTINCT_STEPS} values (${EXPRESSION_LIMITS.items} items at most, objects compared pairwise)`,
    );
  }
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => deepEqual(item, (b as unknown[])[i], budget));
  }
  const keys = Object.getOwnPropertyNames(a).sort();
  const other = Object.getOwnPropertyNames(b).sort();
  if (keys.length !== other.length || keys.some((k, i) => k !== other[i])) return false;
  return keys.every((k) => deepEqual(Reflect.get(a, k), Reflect.get(b, k), budget));
}
