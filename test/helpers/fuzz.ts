import { appendFileSync } from 'node:fs';
import fc from 'fast-check';

/**
 * What the fuzz tests share: how many cases a property runs, how to replay a failure, and the
 * arbitraries more than one file draws from.
 *
 * Run counts: every property names its CI count; `SAGAMESH_FUZZ_RUNS=<factor>` multiplies all of
 * them (a long run: `SAGAMESH_FUZZ_RUNS=50`). A failure prints fast-check's seed and path;
 * `SAGAMESH_FUZZ_SEED=<seed> SAGAMESH_FUZZ_PATH=<path>` replays exactly that case.
 */
export function fuzzRuns(ciRuns: number): number {
  const factor = Number(process.env['SAGAMESH_FUZZ_RUNS'] ?? 1);
  if (!Number.isFinite(factor) || factor <= 0) {
    throw new Error(`SAGAMESH_FUZZ_RUNS must be a positive number, not ${process.env['SAGAMESH_FUZZ_RUNS']}`);
  }
  return Math.max(1, Math.round(ciRuns * factor));
}

/**
 * The seed of `npm test`'s fuzz cases: fixed, so CI runs the same cases every time and a landing
 * is never decided by a draw (a random draw once crashed the jest process, see
 * docs/reliability.md). Exploration is the long run's: `SAGAMESH_FUZZ_SEED=random`.
 */
export const CI_FUZZ_SEED = 20_261_203;

/** fast-check parameters for a property that runs `ciRuns` cases in CI. */
export function fuzzParams<T>(ciRuns: number): fc.Parameters<T> {
  const seed = process.env['SAGAMESH_FUZZ_SEED'] ?? String(CI_FUZZ_SEED);
  const path = process.env['SAGAMESH_FUZZ_PATH'];
  return {
    numRuns: fuzzRuns(ciRuns),
    ...(seed !== 'random' ? { seed: Number(seed) } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}

/**
 * Writes a case to the file `SAGAMESH_FUZZ_TRACE` names, before the case runs, synchronously: a
 * case that kills the process (V8's fatal "invalid size" error cannot be caught) takes fast-check's
 * report with it, so the last line of the trace is the case to replay. Off unless the variable is set.
 */
export function fuzzTrace(property: string, fuzzCase: unknown): void {
  const file = process.env['SAGAMESH_FUZZ_TRACE'];
  if (file === undefined || file === '') return;
  const text = JSON.stringify({ property, case: fuzzCase }, (_key, v: unknown) =>
    typeof v === 'string' && v.length > 200 ? `${v.slice(0, 40)}…(${v.length} characters)` : v,
  );
  appendFileSync(file, `${text.length > 20_000 ? `${text.slice(0, 20_000)}…` : text}\n`);
}

/** Scales a test timeout with the run count (`base` ms for the CI count). */
export function fuzzTimeout(baseMs: number): number {
  return Math.round(baseMs * Math.max(1, Number(process.env['SAGAMESH_FUZZ_RUNS'] ?? 1)));
}

/** Strings a hostile client or a careless operator writes: control characters, quotes, escapes. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '${',
    '${}',
    '}',
    '$${x}',
    '${request.body}',
    '\u0000',
    '\r\n',
    '../../etc/passwd',
    '%2e%2e%2f',
    '__proto__',
    'constructor',
    '\u{1f642}',
    '\ud800',
    'NaN',
    '1e999',
    '-0',
  ),
);

/** Any JSON value, up to `depth` levels, with hostile keys and strings. */
export function jsonValue(depth = 4): fc.Arbitrary<unknown> {
  return fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth: depth },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      hostileString,
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(hostileString, tie('value'), { maxKeys: 5 }),
    ),
  })).value;
}

/** `n` levels of arrays (`[[[…]]]`) or objects (`{"a":{"a":…}}`) around `inner`, as JSON text. */
export function nested(kind: 'array' | 'object', n: number, inner = '1'): string {
  return kind === 'array'
    ? `${'['.repeat(n)}${inner}${']'.repeat(n)}`
    : `${'{"a":'.repeat(n)}${inner}${'}'.repeat(n)}`;
}

/**
 * CPU time this process has spent (user + system), in ms. Time limits in the fuzz properties are
 * checked on it, not on wall time: work that runs away burns CPU, while a machine loaded by other
 * test workers only stretches wall time (a load of 4 on 2 cores overshot 1 s with nothing wrong).
 */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
