import { RE2JS } from 're2js';

/**
 * Regular expressions in saga expressions run on RE2 (re2js, pure JavaScript): time linear in the
 * input, whatever the pattern. V8's own engine backtracks — `/^(a+)+$/` on 29 characters held the
 * event loop for 15 s — and a regex evaluation is one native call that JSONata's timeout cannot
 * interrupt. The price is RE2's syntax: no backreferences, no lookaround.
 *
 * Every regex is a literal in a definition (`$eval` is refused), so all of them are compiled at
 * load (`compileLinearRegExp`) and a pattern RE2 cannot run is a definition problem, not a saga
 * failure.
 */

/** Compiled patterns, by the RegExp object of the JSONata syntax tree that holds the literal. */
const compiled = new WeakMap<RegExp, RE2JS>();

/** Compiles a JSONata regex literal for RE2; throws an Error whose message says why it cannot. */
export function compileLinearRegExp(literal: RegExp): RE2JS {
  const known = compiled.get(literal);
  if (known) return known;
  // translateRegExp would quietly turn a named backreference into the literal text `k<name>`.
  if (/\\k</.test(literal.source)) throw new Error('backreferences are not supported');
  // translateRegExp maps JavaScript syntax (named groups, \u escapes) and the i and m flags.
  const pattern = RE2JS.compile(RE2JS.translateRegExp(literal));
  compiled.set(literal, pattern);
  return pattern;
}

/** A match as JSONata reads it from RegExp#exec: the groups by index, and `index`. */
type ExecResult = (string | undefined)[] & { index: number };

/**
 * What JSONata's `RegexEngine` option must be: it calls `new RegexEngine(literal)` for each regex
 * evaluation, then `exec(input)` after setting `lastIndex`, and reads `lastIndex` back to find the
 * next match (jsonata.js, evaluateRegex). Only that part of RegExp is implemented.
 */
export class LinearRegExp {
  lastIndex = 0;
  private readonly pattern: RE2JS;

  constructor(literal: RegExp) {
    this.pattern = compileLinearRegExp(literal);
  }

  exec(input: string): ExecResult | null {
    const matcher = this.pattern.matcher(input);
    if (this.lastIndex > input.length || !matcher.find(this.lastIndex)) {
      this.lastIndex = 0;
      return null;
    }
    const groups: (string | undefined)[] = [];
    for (let i = 0; i <= matcher.groupCount(); i++) groups.push(matcher.group(i) ?? undefined);
    this.lastIndex = matcher.end();
    return Object.assign(groups, { index: matcher.start() });
  }
}
