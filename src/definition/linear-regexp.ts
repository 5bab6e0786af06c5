import { AsyncLocalStorage } from 'node:async_hooks';
import { RE2JS } from 're2js';
import { EXPRESSION_LIMITS, ExpressionLimitError } from './expression-limits';

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

/**
 * When the evaluation that runs a regex must end (Date.now() milliseconds). One call of `$replace`,
 * `$split` or `$match` walks every match of its input without returning to JSONata, whose timeout
 * is checked only between evaluation steps: 1 MiB of matches held the event loop 6.2 s for one
 * `$replace` against a 1 s limit. So each match checks the deadline of the evaluation it belongs to,
 * carried by the async context of `withRegexDeadline` (evaluations of one expression interleave).
 */
const deadlines = new AsyncLocalStorage<number>();

/** Runs `evaluation` so that every regex match in it fails with ExpressionLimitError past `deadline`. */
export function withRegexDeadline<T>(deadline: number, evaluation: () => Promise<T>): Promise<T> {
  return deadlines.run(deadline, evaluation);
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
  private readonly deadline: number;

  constructor(literal: RegExp) {
    this.pattern = compileLinearRegExp(literal);
    this.deadline = deadlines.getStore() ?? Infinity;
  }

  exec(input: string): ExecResult | null {
    if (Date.now() > this.deadline) {
      throw new ExpressionLimitError(
        `regular expression matching ran past the ${EXPRESSION_LIMITS.timeoutMs} ms time limit`,
      );
    }
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
