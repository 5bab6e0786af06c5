import jsonata from 'jsonata';
import { distinctValues, sortValues } from './expression-collections';
import {
  EXPRESSION_LIMITS,
  RANGE_ENDS,
  checkStep,
  evaluationBudget,
  jsonFits,
  tooLong,
} from './expression-limits';

/**
 * Puts EXPRESSION_LIMITS on expressions: every step's result is checked (checkStep, installed on
 * each compiled expression), and the built-ins whose output size comes from an argument rather
 * than from their input are replaced, for each evaluation (evaluationBindings), by guarded versions
 * that refuse before they allocate — V8's "invalid size" error is fatal, so checking the result
 * afterwards would be too late.
 */
export function installGuards(run: jsonata.Expression): void {
  // jsonata.js evaluate() calls the function bound to this symbol with each step's result;
  // jsonata.d.ts types assign's name as a string, but it binds any key (as Environment#bind says).
  const assign = run.assign.bind(run) as (name: string | symbol, value: unknown) => void;
  assign(Symbol.for('jsonata.__evaluate_exit'), checkStep);
  markRangeEnds(run.ast());
}

/** Adds the operands of every `..` in the syntax tree to RANGE_ENDS, for checkStep to check. */
function markRangeEnds(ast: unknown): void {
  const pending: unknown[] = [ast];
  const seen = new WeakSet<object>();
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    if (typeof node !== 'object' || node === null || seen.has(node)) continue;
    seen.add(node);
    if (Array.isArray(node)) {
      pending.push(...(node as unknown[]));
      continue;
    }
    const n = node as Record<string, unknown>;
    if (n['type'] === 'binary' && n['value'] === '..') {
      for (const end of [n['lhs'], n['rhs']])
        if (typeof end === 'object' && end !== null) RANGE_ENDS.add(end);
    }
    for (const child of Object.values(n)) if (typeof child === 'object') pending.push(child);
  }
}

/**
 * Bindings for one evaluation: the guarded built-ins (they shadow JSONata's own in the
 * evaluation's frame) and a fresh budget. Passed per evaluation rather than registered per
 * expression, which would cost every compiled expression 8 KB of parsed signatures.
 */
export async function evaluationBindings(): Promise<Record<string, unknown>> {
  return { ...(await GUARDED_FUNCTIONS), ...evaluationBudget() };
}

const L = EXPRESSION_LIMITS;

interface Builtin {
  implementation: (this: jsonata.Focus, ...args: unknown[]) => unknown;
}

const NAMES = ['pad', 'join', 'string', 'fromMillis', 'toMillis'] as const;

/** JSONata's own implementations, to call once a guard has let the arguments through. */
const ORIGINALS: Promise<Record<(typeof NAMES)[number], Builtin>> = jsonata(
  `{${NAMES.map((n) => `'${n}': $${n}`).join(', ')}}`,
)
  .evaluate({})
  .then((found: unknown) => {
    const get = (name: string): Builtin => {
      const f: unknown = typeof found === 'object' && found !== null ? Reflect.get(found, name) : undefined;
      if (!isBuiltin(f)) throw new Error(`jsonata has no built-in $${name}`);
      return f;
    };
    return {
      pad: get('pad'),
      join: get('join'),
      string: get('string'),
      fromMillis: get('fromMillis'),
      toMillis: get('toMillis'),
    };
  });

function isBuiltin(value: unknown): value is Builtin {
  return (
    typeof value === 'object' && value !== null && typeof Reflect.get(value, 'implementation') === 'function'
  );
}

type Guarded = Parameters<jsonata.Expression['registerFunction']>[1];

/** Name, guarded implementation and JSONata's own signature for it (jsonata.js, staticFrame). */
const GUARDED: readonly (readonly [string, Guarded, string])[] = [
  ['sort', sortValues as Guarded, '<af?:a>'],
  ['distinct', distinctValues as Guarded, '<x:x>'],
  [
    'pad',
    async function (this: jsonata.Focus, str: string | undefined, width: number, char?: string) {
      if (!(Math.abs(Math.trunc(width)) <= L.stringLength)) throw tooLong(Math.abs(width));
      return (await ORIGINALS).pad.implementation.call(this, str, width, char);
    },
    '<s-ns?:s>',
  ],
  [
    'join',
    async function (this: jsonata.Focus, strs: readonly string[] | undefined, separator?: string) {
      if (strs !== undefined) {
        let length = (separator ?? '').length * Math.max(0, strs.length - 1);
        for (const s of strs) length += s.length;
        if (length > L.stringLength) throw tooLong(length);
      }
      return (await ORIGINALS).join.implementation.call(this, strs, separator);
    },
    '<a<s>s?:s>',
  ],
  [
    'string',
    async function (this: jsonata.Focus, arg: unknown, prettify?: boolean) {
      if (!jsonFits(arg, L.stringLength)) throw tooLong(L.stringLength + 1);
      return (await ORIGINALS).string.implementation.call(this, arg, prettify);
    },
    '<x-b?:s>',
  ],
  [
    'fromMillis',
    async function (this: jsonata.Focus, millis: number | undefined, picture?: string, timezone?: string) {
      checkPicture(picture);
      return (await ORIGINALS).fromMillis.implementation.call(this, millis, picture, timezone);
    },
    '<n-s?s?:s>',
  ],
  [
    // Replaces the `$now` jsonata() binds per expression; the evaluation's frames carry its time.
    'now',
    async function (this: jsonata.Focus, picture?: string, timezone?: string) {
      checkPicture(picture);
      const now = this.environment.timestamp.getTime();
      return (await ORIGINALS).fromMillis.implementation.call(this, now, picture, timezone);
    },
    '<s?s?:s>',
  ],
  [
    'toMillis',
    async function (this: jsonata.Focus, timestamp: string | undefined, picture?: string) {
      if (picture !== undefined) throw new Error(TO_MILLIS_PICTURE);
      return (await ORIGINALS).toMillis.implementation.call(this, timestamp);
    },
    '<s-s?:n>',
  ],
];

/** The guarded built-ins as JSONata function objects (signatures parsed once), by name. */
const GUARDED_FUNCTIONS: Promise<Record<string, unknown>> = (() => {
  const names = GUARDED.map(([name]) => name);
  const holder = jsonata(`{${names.map((n) => `'${n}': $${n}`).join(', ')}}`);
  for (const [name, guarded, signature] of GUARDED) holder.registerFunction(name, guarded, signature);
  return holder.evaluate({}).then((found: unknown) => {
    const out: Record<string, unknown> = {};
    for (const name of names) {
      const f: unknown = typeof found === 'object' && found !== null ? Reflect.get(found, name) : undefined;
      if (!isBuiltin(f)) throw new Error(`could not build the guarded $${name}`);
      out[name] = f;
    }
    return out;
  });
})();

/**
 * JSONata parses a timestamp against a picture with a backtracking RegExp built from the picture
 * (`[Yw][Mw][Dw][Hw]` on 400 characters: 3 s, and polynomially worse), beyond the reach of the
 * linear regex engine; expression.ts refuses the call at load where it can see it.
 */
export const TO_MILLIS_PICTURE =
  '$toMillis with a picture is not available (JSONata matches it with a backtracking regular expression); use $match';

/** A width modifier (`[Y,200000000]`) makes $fromMillis pad to that many characters. */
function checkPicture(picture: string | undefined): void {
  for (const digits of picture?.match(/\d+/g) ?? []) {
    if (Number(digits) > L.stringLength) throw tooLong(Number(digits));
  }
}
