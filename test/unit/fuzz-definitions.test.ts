import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ERRORS, SagameshError } from '../../src/errors';
import { DEFINITION_LIMITS } from '../../src/definition/definition-limits';
import { DefinitionSet } from '../../src/definition/definition-set';
import { loadDefinitionText } from '../../src/definition/loader';
import type { DefinitionProblem } from '../../src/definition/loader';
import { cpuMs, fuzzParams, fuzzTimeout, fuzzTrace, hostileString, jsonValue } from '../helpers/fuzz';

/**
 * Fuzzing saga definitions (issue 14): random YAML text and random objects, alone or grafted onto
 * the demo's book-trip saga, go through the loader. Whatever it is given, the loader answers
 * with a definition or with problems, each under a SAGAMESH_ERR_DEF_* code of the registry —
 * it never throws — and a file within DEFINITION_LIMITS is checked in well under a second.
 */

const BOOK_TRIP = fs.readFileSync(path.join(__dirname, '..', '..', 'sagas', 'book-trip.yaml'), 'utf8');
const DEF_CODES = new Set(
  Object.values(ERRORS)
    .map((e) => e.code)
    .filter((c) => c.startsWith('SAGAMESH_ERR_DEF_')),
);
/** A random file within the limits is checked within this much CPU (cpuMs; the valid book-trip takes ~1 ms warm). */
const CHECK_MS = 1000;

function check(text: string): { definition: boolean; problems: DefinitionProblem[]; ms: number } {
  const started = cpuMs();
  const result = loadDefinitionText('fuzz.yaml', text);
  const ms = cpuMs() - started;
  for (const p of result.problems) {
    expect(DEF_CODES).toContain(p.code);
    expect(p.line).toBeGreaterThanOrEqual(1);
    expect(typeof p.message).toBe('string');
  }
  // A definition comes with no problem; no definition comes with at least one.
  expect(result.definition === undefined).toBe(result.problems.length > 0);
  return { definition: result.definition !== undefined, problems: result.problems, ms };
}

/** YAML-ish text: fragments of YAML syntax, saga fields and hostile strings. */
const yamlText = fc
  .array(
    fc.oneof(
      hostileString,
      fc.constantFrom(
        '\n',
        '  ',
        '- ',
        ': ',
        '? ',
        '[',
        ']',
        '{',
        '}',
        ',',
        '&a ',
        '*a',
        '!!binary ',
        '!!str ',
        '!custom ',
        '|\n',
        '>-\n',
        '---\n',
        '...\n',
        '%YAML 1.2\n',
        '# c\n',
        '"',
        "'",
        '<<: *a\n',
        'apiVersion: sagamesh.dev/v1alpha1\n',
        'kind: Saga\n',
        'metadata: { name: x }\n',
        'spec:\n',
        '  steps:\n',
        '  match: { method: POST, path: /x }\n',
        '  deadline: 1s\n',
        '${request.body}',
        '${$eval("1")}',
        'http://hotel/x',
      ),
    ),
    { maxLength: 30 },
  )
  .map((parts) => parts.join(''));

/** Every path to a value inside `value` (object keys and array indexes). */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

/** `value` with the thing at `at` replaced by `graft` (a deep copy; the root when `at` is empty). */
function replaced(value: unknown, at: readonly (string | number)[], graft: unknown): unknown {
  if (at.length === 0) return graft;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let node: unknown = copy;
  for (const key of at.slice(0, -1)) {
    node =
      typeof node === 'object' && node !== null ? (node as Record<string | number, unknown>)[key] : undefined;
  }
  // An earlier graft may have replaced the parent: then there is nothing to graft onto.
  if (typeof node === 'object' && node !== null)
    (node as Record<string | number, unknown>)[at[at.length - 1] ?? ''] = graft;
  return copy;
}

const bookTrip: unknown = (() => {
  const r = loadDefinitionText('book-trip.yaml', BOOK_TRIP);
  expect(r.problems).toEqual([]);
  return parse(BOOK_TRIP) as unknown;
})();
const bookTripPaths = paths(bookTrip);

/** A value a field might wrongly hold: any JSON, a duration, an expression, a huge number. */
const graft = fc.oneof(
  jsonValue(3),
  fc.constantFrom(
    '1s',
    '0s',
    '-1s',
    '999999h',
    '1e9ms',
    '${',
    '${request.body.x}',
    '${steps.nope.response}',
    1e308,
  ),
  fc.constantFrom('http://hotel/${request.body.id}', 'http://${request.body.host}/x', 'file:///etc/passwd'),
);

describe('the loader, given random definitions', () => {
  it(
    'answers random YAML text with coded problems, never a throw',
    () => {
      fc.assert(
        fc.property(yamlText, (text) => {
          fuzzTrace('yaml', text);
          expect(check(text).ms).toBeLessThan(CHECK_MS);
        }),
        fuzzParams(1000),
      );
    },
    fuzzTimeout(30_000),
  );

  it(
    'answers random objects, alone or grafted onto book-trip, with a definition or coded problems',
    () => {
      const document = fc.oneof(
        jsonValue(5),
        fc
          .tuple(fc.constantFrom(...bookTripPaths), graft, fc.constantFrom(...bookTripPaths), graft)
          .map(([p1, g1, p2, g2]) => replaced(replaced(bookTrip, p1, g1), p2, g2)),
      );
      fc.assert(
        fc.property(document, (doc) => {
          fuzzTrace('document', doc);
          let text: string;
          try {
            text = stringify(doc);
          } catch {
            return; // not representable as YAML: nothing to load
          }
          expect(check(text).ms).toBeLessThan(CHECK_MS);
        }),
        fuzzParams(250),
      );
    },
    fuzzTimeout(30_000),
  );

  it(
    'builds a definition set from what loads, and matches random requests against it without a throw',
    () => {
      const graftName = fc.tuple(
        fc.constantFrom(['spec', 'match', 'path'], ['spec', 'match', 'method'], ['metadata', 'name']),
        hostileString,
      );
      fc.assert(
        fc.property(
          fc.array(graftName, { maxLength: 3 }),
          fc.constantFrom('GET', 'POST', 'post', 'DELETE', '', 'PO ST'),
          fc.oneof(hostileString, fc.constantFrom('/trips', '/trips?x=1', '/trips;x', '/%74rips', '//trips')),
          (grafts, method, requestPath) => {
            fuzzTrace('definition set', { grafts, method, requestPath });
            const doc = grafts.reduce<unknown>((d, [at, value]) => replaced(d, at, value), bookTrip);
            const loaded = loadDefinitionText('fuzz.yaml', stringify(doc));
            const defs = loaded.definition ? [loaded.definition] : [];
            const set = new DefinitionSet(defs);
            set.match(method, requestPath);
            set.ambiguous(method, requestPath);
            // The same saga twice is a coded clash, never a half-built set.
            if (loaded.definition) {
              const clash = (() => {
                try {
                  return new DefinitionSet([loaded.definition, loaded.definition]);
                } catch (err) {
                  return err;
                }
              })();
              expect(clash).toBeInstanceOf(SagameshError);
              expect((clash as SagameshError).code).toBe('SAGAMESH_ERR_DEF_DUPLICATE');
            }
          },
        ),
        fuzzParams(100),
      );
    },
    fuzzTimeout(30_000),
  );
});

describe('the loader, given YAML nested past what its parser survives', () => {
  // Was: the yaml parser's stack overflowed (a coded problem), and the next parse of `[` × 1,000
  // + `]` × 1,000 aborted the process (V8: "RegExpCompiler Allocation failed"), test run and all.
  it.each<[string, string]>([
    ['flow sequences left open', '['.repeat(1000)],
    ['flow sequences closed', `${'['.repeat(1000)}${']'.repeat(1000)}`],
    ['flow mappings', `${'{a: '.repeat(2000)}1${'}'.repeat(2000)}`],
    ['compact block sequences', `${'- '.repeat(20_000)}x`],
    ['complex keys', `${'? '.repeat(20_000)}x`],
    ['indented mappings', Array.from({ length: 700 }, (_, i) => `${' '.repeat(i)}a:`).join('\n')],
  ])('%s: a coded problem before the parser recurses', (_, text) => {
    const result = check(text);
    expect(result.problems).toEqual([
      expect.objectContaining({
        code: 'SAGAMESH_ERR_DEF_YAML_SYNTAX',
        message: expect.stringContaining('levels deep'),
      }),
    ]);
    expect(result.ms).toBeLessThan(CHECK_MS);
  });

  it('still loads a definition that nests as deep as an input schema does', () => {
    const deepSchema = BOOK_TRIP.replace(
      'guest: { type: string, minLength: 1 }',
      `guest: ${'{ type: object, properties: { x: '.repeat(20)}{ type: string }${' } }'.repeat(20)}`,
    );
    expect(check(deepSchema).problems).toEqual([]);
  });
});

describe('the loader, given hostile definitions', () => {
  const alias = (levels: number): string => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= levels; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    return lines.join('\n');
  };
  const withSteps = (n: number): string =>
    BOOK_TRIP.replace(
      /steps:\n/,
      `steps:\n${Array.from(
        { length: n },
        (_, i) =>
          `    - name: s${i}\n      action: { request: { method: POST, url: http://hotel/x }, timeout: 1s }\n`,
      ).join('')}`,
    );
  const withBody = (lines: string[]): string =>
    BOOK_TRIP.replace('tripId: ${saga.id}', lines.join('\n        '));

  it.each<[string, () => string, string]>([
    ['an alias bomb (10^9 nodes)', () => alias(9), 'SAGAMESH_ERR_DEF_YAML_SYNTAX'],
    [
      'a file one byte past the limit',
      () => `#${'x'.repeat(DEFINITION_LIMITS.fileBytes)}`,
      'SAGAMESH_ERR_DEF_TOO_LARGE',
    ],
    ['more steps than the limit', () => withSteps(DEFINITION_LIMITS.steps + 1), 'SAGAMESH_ERR_DEF_TOO_LARGE'],
    [
      'more distinct expressions than the limit',
      () =>
        withBody(
          Array.from({ length: DEFINITION_LIMITS.expressions + 1 }, (_, i) => `x${i}: \${saga.id & '${i}'}`),
        ),
      'SAGAMESH_ERR_DEF_TOO_LARGE',
    ],
    [
      'an expression nested 3,000 parentheses deep',
      () => withBody([`tripId: "\${${'('.repeat(3000)}1${')'.repeat(3000)}}"`]),
      'SAGAMESH_ERR_DEF_EXPRESSION',
    ],
    [
      'an expression of 100,000 characters',
      () => withBody([`tripId: "\${${'1+'.repeat(50_000)}1}"`]),
      'SAGAMESH_ERR_DEF_EXPRESSION',
    ],
    ['a string of 255 KiB', () => `a: "${'x'.repeat(255 * 1024)}"`, 'SAGAMESH_ERR_DEF_SCHEMA'],
    [
      'wrong types everywhere',
      () => stringify({ apiVersion: 1, kind: [], metadata: 'x', spec: { steps: {} } }),
      'SAGAMESH_ERR_DEF_SCHEMA',
    ],
    ['two documents', () => `${BOOK_TRIP}\n---\n${BOOK_TRIP}`, 'SAGAMESH_ERR_DEF_YAML_SYNTAX'],
  ])('%s: coded problems, within the time limit', (_, text, code) => {
    const result = check(text());
    expect(result.definition).toBe(false);
    expect(result.problems.map((p) => p.code)).toContain(code);
    expect(result.ms).toBeLessThan(2 * CHECK_MS);
  });
});
