import { ERRORS, SagameshError } from '../../src/errors';
import type { Template, TemplateScope, UrlTemplate } from '../../src/definition/definition';
import {
  compileHeaderTemplate,
  compileTemplate,
  compileUrlTemplate,
  splitInterpolation,
} from '../../src/definition/template';
import type { Compiled } from '../../src/definition/template';

const scope: TemplateScope = {
  request: {
    method: 'POST',
    path: '/trips',
    query: { q: 'x' },
    headers: { 'x-guest': 'ada' },
    body: {
      guest: 'Ada',
      nights: 3,
      vip: true,
      note: null,
      hotel: { city: 'Lisbon', fault: 'fail' },
      tags: ['a', 'b'],
      id: 'b/1 ?&',
    },
  },
  steps: { hotel: { response: { status: 201, headers: {}, body: { id: 'h-1', rooms: [1, 2] } } } },
  saga: { id: 'saga-1', name: 'book-trip' },
};

function ok<T>(compiled: Compiled<T>): T {
  expect(compiled.problems).toEqual([]);
  if (!compiled.template) throw new Error('no template');
  return compiled.template;
}

const template = (value: unknown): Template => ok(compileTemplate(value, ['t']));
const render = (value: unknown): Promise<unknown> => template(value).render(scope);
const url = (text: string): UrlTemplate => ok(compileUrlTemplate(text, ['url']));

async function renderError(promise: Promise<unknown>): Promise<SagameshError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof SagameshError)) throw new Error(`expected a SagameshError, got ${String(err)}`);
  return err;
}

describe('value templates', () => {
  it('keeps the JSON type of an exact ${expr}', async () => {
    await expect(render('${request.body.nights}')).resolves.toBe(3);
    await expect(render('${request.body.vip}')).resolves.toBe(true);
    await expect(render('${request.body.note}')).resolves.toBeNull();
    await expect(render('${request.body.hotel}')).resolves.toEqual({ city: 'Lisbon', fault: 'fail' });
    await expect(render('${request.body.tags}')).resolves.toEqual(['a', 'b']);
    await expect(render('${steps.hotel.response.body.rooms}')).resolves.toEqual([1, 2]);
  });

  it('renders JSONata results as plain JSON (no sequence flags, normal prototypes)', async () => {
    const value = await render('${[1, 2].($ * 2)}');
    expect(value).toStrictEqual([2, 4]);
    const obj = await render("${ {'a': request.body.tags} }");
    expect(obj).toStrictEqual({ a: ['a', 'b'] });
  });

  it('builds strings from mixed text, JSON-stringifying non-strings', async () => {
    await expect(render('${request.body.guest} x${request.body.nights}')).resolves.toBe('Ada x3');
    await expect(render('h=${request.body.hotel}')).resolves.toBe('h={"city":"Lisbon","fault":"fail"}');
    await expect(render('n=${request.body.note}')).resolves.toBe('n=null');
  });

  it('drops keys and items whose expression yields nothing', async () => {
    const rendered = await render({
      a: '${request.body.missing}',
      b: 'x-${request.body.missing}',
      c: ['${request.body.missing}', '${request.body.nights}'],
      d: 1,
    });
    expect(rendered).toEqual({ c: [3], d: 1 });
    await expect(render('${request.body.missing}')).resolves.toBeUndefined();
  });

  it('merges the per-step booking with the guest (the demo body)', async () => {
    const body = await render("${$merge([request.body.hotel, {'guest': request.body.guest}])}");
    expect(body).toEqual({ city: 'Lisbon', fault: 'fail', guest: 'Ada' });
  });

  it('renders nested templates and keeps literal parts', async () => {
    const rendered = await render({
      trip: '${saga.id}',
      n: 1,
      list: [true, null, '${saga.name}'],
      deep: { k: 'v' },
    });
    expect(rendered).toEqual({ trip: 'saga-1', n: 1, list: [true, null, 'book-trip'], deep: { k: 'v' } });
  });

  it('pre-builds a template without expressions and shares it frozen', async () => {
    const t = template({ a: [1, { b: 'text' }], c: '$${not an expression}' });
    const first = await t.render(scope);
    expect(first).toEqual({ a: [1, { b: 'text' }], c: '${not an expression}' });
    expect(await t.render(scope)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(t.stepRefs).toEqual([]);
    expect(t.readsBody).toBe(false);
  });

  it('finds the closing brace of an expression past braces in strings and objects', async () => {
    await expect(render("${ {'a': '}'}.a }")).resolves.toBe('}');
    await expect(render('${ "{" & `x}` }!')).resolves.toBe('{!');
    await expect(render("${ {'k': {'n': 1}}.k.n }/${saga.id}")).resolves.toBe('1/saga-1');
    expect(splitInterpolation('a ${x} b')).toEqual({ pieces: ['a ', { source: 'x' }, ' b'] });
    expect(splitInterpolation('a ${ /* } */ x }')).toEqual({ pieces: ['a ', { source: ' /* } */ x ' }] });
  });

  it('throws STEP_TEMPLATE with the field path when an expression fails', async () => {
    const t = ok(
      compileTemplate({ n: '${$number(request.body.guest)}' }, ['spec', 'response', 'success', 'body']),
    );
    const err = await renderError(t.render(scope));
    expect(err.code).toBe(ERRORS.STEP_TEMPLATE.code);
    expect(err.message).toContain('spec.response.success.body.n');
  });

  it('refuses values JSON cannot hold', async () => {
    const err = await renderError(render('${$uppercase}'));
    expect(err.code).toBe(ERRORS.STEP_TEMPLATE.code);
  });

  it.each([
    'request.body.hotel.city',
    'request.body.tags',
    'request.body.note',
    'request.body.note.x',
    'request.body.guest.length',
    'request.body.missing.deeper',
    'request.body.constructor',
    'steps.hotel.response.body.rooms',
    'steps.hotel.response',
    'request.body.list.id',
    'request.body.nested.list.id',
    '`request`.`body`.`tags`',
  ])('renders the plain path %s exactly as JSONata does', async (expr) => {
    const s: TemplateScope = {
      ...scope,
      request: {
        ...scope.request,
        body: {
          ...(scope.request.body as object),
          list: [{ id: 1 }, { id: 2 }],
          nested: { list: [{ id: 3 }] },
        },
      },
    };
    const fast = await template(`\${${expr}}`).render(s);
    const viaJsonata = await template(`\${(${expr})}`).render(s);
    expect(fast).toStrictEqual(viaJsonata);
  });

  it('does not let request data change the result of another key (no prototype tricks)', async () => {
    const hostile: TemplateScope = {
      ...scope,
      request: { ...scope.request, body: JSON.parse('{"__proto__": {"x": 1}}') },
    };
    const rendered = await template('${request.body}').render(hostile);
    expect(Object.getPrototypeOf(rendered)).toBe(Object.prototype);
    expect(JSON.stringify(rendered)).toBe('{"__proto__":{"x":1}}');
  });
});

describe('compile problems', () => {
  it.each([
    ['${request.body.', 'unterminated'],
    ['${}', 'empty'],
    ['${a +}', 'a +'],
    ['${$eval(request.body.code)}', '$eval is not allowed'],
    // JSONata reads `x-custom` as `x` minus `custom`: the value would silently be missing.
    ['${request.headers.x-custom}', 'request.headers.`x-custom`'],
    ['${request.query.page-size}', 'request.query.`page-size`'],
    ['${steps.hotel.response.headers.x-trace-id}', 'steps.hotel.response.headers.`x-trace-id`'],
  ])('%s is an expression problem', (text, message) => {
    const compiled = compileTemplate({ x: [text] }, ['body']);
    expect(compiled.template).toBeUndefined();
    expect(compiled.problems).toEqual([
      { path: ['body', 'x', 0], kind: 'expression', message: expect.stringContaining(message) },
    ]);
  });

  it('takes a hyphenated name in backticks, and a real subtraction', () => {
    for (const text of ['${request.headers.`x-custom`}', '${request.body.total - request.body.paid}']) {
      expect(compileTemplate({ x: text }, []).problems).toEqual([]);
    }
  });

  it('reports every bad expression, not just the first', () => {
    const compiled = compileTemplate({ a: '${a +}', b: ['${(}'] }, []);
    expect(compiled.problems.map((p) => p.path)).toEqual([['a'], ['b', 0]]);
  });
});

describe('what a template reads', () => {
  it.each([
    ['${steps.hotel.response.body.id}', ['hotel'], false, false],
    ['${$.steps.hotel.response}', ['hotel'], false, false],
    ['${$$.steps.car}', ['car'], false, false],
    ['${steps.hotel.response.body.(steps.x)}', ['hotel'], false, false],
    ['${request.body.items[steps > 1]}', [], false, true],
    ['${steps.hotel ? steps.flight : steps.car}', ['hotel', 'flight', 'car'], false, false],
    ['${steps.*.response}', [], true, false],
    ["${$lookup(steps, 'hotel')}", [], true, false],
    ["${steps['hotel']}", [], true, false],
    ['${$keys($)}', [], true, true],
    ['${request.method}', [], false, false],
    ['${request.headers.x}', [], false, false],
    ['${request}', [], false, true],
    ["${$merge([request.body.hotel, {'g': 1}])}", [], false, true],
  ])('%s', (text, steps, dynamic, readsBody) => {
    const compiled = compileTemplate(text, ['x']);
    const t = ok(compiled);
    expect(t.stepRefs).toEqual(steps);
    expect(compiled.dynamicStepReads.length > 0).toBe(dynamic);
    expect(t.readsBody).toBe(readsBody);
  });
});

describe('header templates', () => {
  it('renders strings, stringifies other values and leaves out missing ones', async () => {
    const h = (v: string | number) => ok(compileHeaderTemplate(v, ['h'])).render(scope);
    await expect(h('${request.body.nights}')).resolves.toBe('3');
    await expect(h(42)).resolves.toBe('42');
    await expect(h('${request.body.tags}')).resolves.toBe('["a","b"]');
    await expect(h('${request.body.missing}')).resolves.toBeUndefined();
  });

  it('refuses CR and LF so data cannot smuggle headers', async () => {
    const t = ok(compileHeaderTemplate('${request.body.guest}', ['h']));
    const evil: TemplateScope = {
      ...scope,
      request: { ...scope.request, body: { guest: 'a\r\nx-admin: 1' } },
    };
    expect((await renderError(t.render(evil))).code).toBe(ERRORS.STEP_TEMPLATE.code);
    expect(compileHeaderTemplate('a\nb', ['h']).problems).toHaveLength(1);
  });

  it.each([
    ['a control character', 'A\u0001da'],
    ['DEL', 'Ada\u007f'],
    ['an emoji', 'Ada \u{1f642}'],
    ['a non-ASCII letter', 'Zoë'],
  ])('refuses %s as a template error at render, before anything could be sent', async (_, guest) => {
    const t = ok(compileHeaderTemplate('${request.body.guest}', ['h']));
    const data: TemplateScope = { ...scope, request: { ...scope.request, body: { guest } } };
    const err = await renderError(t.render(data));
    expect(err.code).toBe(ERRORS.STEP_TEMPLATE.code);
    expect(err.message).toContain('printable US-ASCII');
    expect(compileHeaderTemplate(guest, ['h']).problems).toHaveLength(1);
  });

  it('accepts printable US-ASCII, space and tab', async () => {
    const t = ok(compileHeaderTemplate('${request.body.guest}', ['h']));
    const guest = ' !"~ tab\there ';
    const data: TemplateScope = { ...scope, request: { ...scope.request, body: { guest } } };
    await expect(t.render(data)).resolves.toBe(guest);
  });
});

describe('URL templates', () => {
  it('fixes the origin and percent-encodes each interpolated value', async () => {
    const u = url(
      'http://Hotel:8080/bookings/${request.body.id}?guest=${request.body.guest}&n=${request.body.nights}',
    );
    expect(u.origin).toBe('http://hotel:8080');
    await expect(u.renderPath(scope)).resolves.toBe('/bookings/b%2F1%20%3F%26?guest=Ada&n=3');
  });

  it('encodes a/b as one path segment', async () => {
    const u = url('https://hotel/bookings/${steps.hotel.response.body.id}');
    const s: TemplateScope = {
      ...scope,
      steps: { hotel: { response: { status: 201, headers: {}, body: { id: 'a/b' } } } },
    };
    await expect(u.renderPath(s)).resolves.toBe('/bookings/a%2Fb');
    expect(u.stepRefs).toEqual(['hotel']);
  });

  it('renders literal URLs without evaluating anything', async () => {
    await expect(url('http://hotel').renderPath(scope)).resolves.toBe('/');
    await expect(url('http://hotel?x=1').renderPath(scope)).resolves.toBe('/?x=1');
    await expect(url('http://hotel/a/b').renderPath(scope)).resolves.toBe('/a/b');
  });

  it.each([
    ['${request.body.url}', 'must start with http'],
    ['http://${request.body.host}/a', 'host must be literal'],
    ['http://hotel${request.body.x}', 'host must be literal'],
    ['http://hotel.${request.body.x}/a', 'host must be literal'],
    ['ftp://hotel/a', 'scheme must be http or https'],
    ['http://user:pw@hotel/a', 'credentials'],
    ['http://ho_tel/a', 'not a host name'],
    ['http://hotel:99999/a', 'out of range'],
    ['http://hotel/a#frag', 'fragment'],
    ['http://hotel/a b', 'percent-encoded'],
    ['http://hotel/../admin', '. or ..'],
    ['//hotel/a', 'must start with http'],
  ])('rejects %s', (text, message) => {
    const compiled = compileUrlTemplate(text, ['url']);
    expect(compiled.template).toBeUndefined();
    expect(compiled.problems).toEqual([
      { path: ['url'], kind: 'url', message: expect.stringContaining(message) },
    ]);
  });

  it.each([
    ['${request.body.missing}', 'nothing'],
    ['${request.body.note}', 'null'],
    ['${request.body.hotel}', 'object'],
    ["${''}", 'empty path segment'],
    ["${'..'}", '. or ..'],
  ])('refuses to render %s into a path', async (expr, message) => {
    const err = await renderError(url(`http://hotel/bookings/${expr}`).renderPath(scope));
    expect(err.code).toBe(ERRORS.STEP_TEMPLATE.code);
    expect(err.message).toContain(message);
  });

  it('allows an empty value in the query', async () => {
    await expect(url("http://hotel/a?x=${''}").renderPath(scope)).resolves.toBe('/a?x=');
  });
});
