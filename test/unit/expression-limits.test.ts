import { SagameshError } from '../../src/errors';
import type { TemplateScope } from '../../src/definition/definition';
import { compileTemplate } from '../../src/definition/template';

/**
 * Hostile request data against the expressions of a definition: nothing an evaluation does may
 * stall the event loop past its time limit or grow past its size limits — each ends one saga's
 * step with a coded error instead.
 */

const scope = (body: unknown): TemplateScope => ({
  request: { method: 'POST', path: '/x', query: {}, headers: {}, body },
  steps: {},
  saga: { id: 's-1', name: 'x' },
});

function render(expr: string, body: unknown = {}): Promise<unknown> {
  const compiled = compileTemplate(`\${${expr}}`, ['body']);
  expect(compiled.problems).toEqual([]);
  if (!compiled.template) throw new Error('no template');
  return compiled.template.render(scope(body));
}

async function failure(promise: Promise<unknown>): Promise<SagameshError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof SagameshError)) throw new Error(`expected a SagameshError, got ${String(err)}`);
  return err;
}

const LIMIT = 'SAGAMESH_ERR_EXPRESSION_LIMIT';

describe('regular expressions run in linear time', () => {
  it('matches /^(a+)+$/ against input that takes a backtracking engine hours', async () => {
    // V8 needs ~15 s for 29 characters and doubles with each one more: 40 would be ~9 hours.
    const started = Date.now();
    await expect(render('$contains(request.body.s, /^(a+)+$/)', { s: `${'a'.repeat(40)}!` })).resolves.toBe(
      false,
    );
    await expect(render('$contains(request.body.s, /^(a+)+$/)', { s: 'a'.repeat(40) })).resolves.toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('keeps what JSONata does with matches: groups, indexes, replace, split, flags', async () => {
    await expect(render("$match('😀aB b', /(b)(x)?/i)")).resolves.toEqual([
      { match: 'B', index: 3, groups: ['B', undefined] },
      { match: 'b', index: 5, groups: ['b', undefined] },
    ]);
    await expect(render("$replace('a-b-c', /(\\w)-/, '$1+')")).resolves.toBe('a+b+c');
    await expect(render("$split('a1b22c', /\\d+/)")).resolves.toEqual(['a', 'b', 'c']);
    await expect(render("$contains('x\\nab', /^ab$/m)")).resolves.toBe(true);
    await expect(render("$contains('{A}', /\\x7bA\\x7d/)")).resolves.toBe(true);
  });

  it.each([
    ['$match(request.body.s, /(a)\\1/)', 'backreference'],
    ['$match(request.body.s, /(?<n>a)\\k<n>/)', 'backreference'],
    ['$contains(request.body.s, /a(?=b)/)', 'lookahead'],
    ['$contains(request.body.s, /(?<=a)b/)', 'lookbehind'],
  ])('refuses %s at load (%s)', (expr) => {
    const compiled = compileTemplate(`\${${expr}}`, ['body']);
    expect(compiled.template).toBeUndefined();
    expect(compiled.problems).toEqual([
      { path: ['body'], kind: 'expression', message: expect.stringContaining('cannot run in linear time') },
    ]);
  });

  it('refuses $toMillis with a picture, which JSONata parses with a backtracking RegExp', async () => {
    const compiled = compileTemplate("${$toMillis(request.body.t, '[Yw][Mw][Dw][Hw]')}", ['body']);
    expect(compiled.problems).toEqual([
      { path: ['body'], kind: 'expression', message: expect.stringContaining('$toMillis with a picture') },
    ]);
    // The same call reached through a variable is refused when it runs.
    const err = await failure(render("($f := $toMillis; $f(request.body.t, '[Yw]'))", { t: 'one' }));
    expect(err.message).toContain('$toMillis with a picture');
    await expect(render("$toMillis('2026-12-02T10:00:00Z')")).resolves.toBe(Date.UTC(2026, 11, 2, 10));
  });
});

describe('sizes are bounded before they are built', () => {
  it.each([
    ['$pad', '$pad("", request.body.n, "x")', { n: 200_000_000 }],
    ['$pad with a long pad', '$pad("", request.body.n, "xy")', { n: 200_000_000 }],
    ['$fromMillis with a width', '$fromMillis(0, "[Y," & request.body.n & "]")', { n: 200_000_000 }],
    ['$now with a width', '$now("[Y," & request.body.n & "]")', { n: 200_000_000 }],
    [
      'a string doubled by &, then measured',
      '($f := function($s, $n) { $n = 0 ? $s : $f($s & $s, $n - 1) }; $length($f("x", request.body.n)))',
      { n: 28 },
    ],
    ['$join of a shared long string', '($s := $pad("", 2000, "x"); $join([1..1000].($s)))', {}],
    [
      '$string of a value that shares its parts',
      '($a := [1..20000]; $b := [[$a], [$a], [$a], [$a]]; $c := [[$b], [$b], [$b], [$b]]; $d := [[$c], [$c], [$c], [$c]]; $string([[$d], [$d], [$d], [$d]]))',
      {},
    ],
  ])('%s', async (_what, expr, body) => {
    const err = await failure(render(expr, body));
    expect(err.code).toBe(LIMIT);
    expect(err.message).toMatch(/string of \d+ characters; the limit is 1048576/);
  });

  it('stops an evaluation that keeps building, long before its time runs out', async () => {
    // Ranges of 100,000 items, one after another: 526 MB of arrays within the 1 s timeout before.
    const err = await failure(render('$count([1..100000].[[ [1..100000] ]])'));
    expect(err.code).toBe(LIMIT);
    expect(err.message).toContain('built more than 500000 array items in one evaluation');
  });

  it('stops an evaluation that keeps building strings', async () => {
    // 40 strings of 1 Mi characters: 80 MiB.
    const err = await failure(render('$count([1..40].($pad("", 1000000, "x")))'));
    expect(err.code).toBe(LIMIT);
    expect(err.message).toContain('32 MiB of strings and arrays in one evaluation');
  });

  it("codes JSONata's own guardrails the same way: depth, range size", async () => {
    const deep = await failure(render('($f := function($n) { 1 + $f($n + 1) }; $f(0))'));
    expect(deep.code).toBe(LIMIT);
    const range = await failure(render('[1..200000]'));
    expect(range.code).toBe(LIMIT);
  });

  it('leaves ordinary expressions alone', async () => {
    await expect(render('$pad("7", -3, "0")')).resolves.toBe('007');
    await expect(render("$join(['a', 'b'], ',')")).resolves.toBe('a,b');
    await expect(render('$string({"a": [1, 2]})')).resolves.toBe('{"a":[1,2]}');
    await expect(render("$fromMillis(0, '[Y0001]-[M01]')")).resolves.toBe('1970-01');
    await expect(render('$count([1..100000])')).resolves.toBe(100_000);
    await expect(
      render('$length(request.body.s & request.body.s)', { s: 'x'.repeat(500_000) }),
    ).resolves.toBe(1_000_000);
    await expect(render('$number("x")')).rejects.toMatchObject({ code: 'SAGAMESH_ERR_STEP_TEMPLATE' });
  });
});
