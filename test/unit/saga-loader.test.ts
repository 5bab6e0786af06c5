import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ERRORS, SagameshError } from '../../src/errors';
import type { SagaDefinition, TemplateScope } from '../../src/definition/definition';
import { DefinitionSet } from '../../src/definition/definition-set';
import { formatDuration, parseDuration } from '../../src/definition/duration';
import {
  formatProblem,
  isDefinitionProblem,
  loadDefinitionText,
  loadDefinitions,
} from '../../src/definition/loader';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'sagas');

/** A minimal valid saga; tests replace the lines they are about. */
const BASE = `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: base }
spec:
  match: { method: POST, path: /base }
  steps:
    - name: one
      action: { request: { method: POST, url: http://one/x } }
`;

function load(text: string, opts?: { maxDeadlineMs?: number }): SagaDefinition {
  const { definition, problems } = loadDefinitionText('t.yaml', text, opts);
  expect(problems).toEqual([]);
  if (!definition) throw new Error('no definition');
  return definition;
}

/** [line, path, code] of each problem: what an operator needs to find and fix it. */
function problemsOf(text: string, opts?: { maxDeadlineMs?: number }): [number, string, string][] {
  const { definition, problems } = loadDefinitionText('t.yaml', text, opts);
  expect(definition).toBeUndefined();
  return problems.map((p) => [p.line, p.path, p.code]);
}

async function loadError(dir: string): Promise<SagameshError> {
  const err: unknown = await loadDefinitions(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof SagameshError)) throw new Error(`expected a SagameshError, got ${String(err)}`);
  return err;
}

const steps = (yaml: string): string => BASE.replace(/ {2}steps:\n[\s\S]*$/, `  steps:\n${yaml}`);

describe('the demo sagas', () => {
  let defs: SagaDefinition[];
  beforeAll(async () => {
    defs = await loadDefinitions(path.join(ROOT, 'sagas'));
  });

  it('load, sorted by name', () => {
    expect(defs.map((d) => d.name)).toEqual(['book-trip', 'plan-itinerary']);
  });

  it('book-trip runs three independent steps with their timeouts and retries', () => {
    const trip = defs[0];
    if (!trip) throw new Error('missing');
    expect(trip.match).toEqual({ method: 'POST', path: '/trips' });
    expect(trip.deadlineMs).toBe(10_000);
    expect(trip.respond).toBe('aggregate');
    expect(trip.steps.map((s) => [s.name, s.dependsOn, s.action.timeoutMs, s.action.retry])).toEqual([
      ['hotel', [], 2000, { attempts: 3, backoffMs: 50, maxBackoffMs: 2000 }],
      ['flight', [], 1000, { attempts: 3, backoffMs: 50, maxBackoffMs: 2000 }],
      ['car', [], 2000, { attempts: 3, backoffMs: 50, maxBackoffMs: 2000 }],
    ]);
    expect(trip.steps.map((s) => s.compensation?.request.url.stepRefs)).toEqual([
      ['hotel'],
      ['flight'],
      ['car'],
    ]);
    expect(trip.response.success.status).toBe(201);
    expect(trip.response.failure.status).toBe(409);
    expect(trip.version).toBe(
      createHash('sha256')
        .update(fs.readFileSync(path.join(ROOT, 'sagas', 'book-trip.yaml'), 'utf8'))
        .digest('hex')
        .slice(0, 12),
    );
    expect(Object.isFrozen(trip) && Object.isFrozen(trip.steps)).toBe(true);
  });

  it('book-trip validates its input and passes the booking (with its fault) through', async () => {
    const trip = defs[0];
    if (!trip?.input.validate) throw new Error('no validator');
    expect(trip.input.json).toBe(true);
    expect(trip.input.validate({ guest: 'Ada', hotel: {}, flight: {}, car: {} })).toEqual([]);
    expect(trip.input.validate({ guest: 'Ada', hotel: {}, flight: 3 })).toEqual([
      "/: must have required property 'car'",
      '/flight: must be object',
    ]);
    const body = { guest: 'Ada', hotel: { nights: 2, fault: 'flaky:2' }, flight: {}, car: {} };
    const scope: TemplateScope = {
      request: { method: 'POST', path: '/trips', query: {}, headers: {}, body },
      steps: { hotel: { response: { status: 201, headers: {}, body: { id: 'h/1' } } } },
      saga: { id: 's1', name: 'book-trip' },
    };
    const hotel = trip.steps[0];
    await expect(hotel?.action.request.body?.render(scope)).resolves.toEqual({
      nights: 2,
      fault: 'flaky:2',
      guest: 'Ada',
    });
    expect(hotel?.compensation?.request.method).toBe('DELETE');
    expect(hotel?.compensation?.request.url.origin).toBe('http://hotel');
    await expect(hotel?.compensation?.request.url.renderPath(scope)).resolves.toBe('/bookings/h%2F1');
  });

  it('plan-itinerary adds the bookings to the upstream request', () => {
    const plan = defs[1];
    expect(plan?.respond).toBe('upstream');
    expect(plan?.steps.map((s) => s.name)).toEqual(['hotel', 'flight']);
    expect(Object.keys(plan?.upstream?.headers ?? {})).toEqual(['x-hotel-booking', 'x-flight-booking']);
  });
});

describe('problems', () => {
  it('reports every problem of a file with its line, field path and code', async () => {
    const err = await loadError(path.join(FIXTURES, 'many-problems'));
    expect(err.code).toBe(ERRORS.DEFINITIONS_INVALID.code);
    expect(err.message).toContain('11 problem(s)');
    const problems = err.details.filter(isDefinitionProblem);
    expect(problems.map((p) => [p.line, p.path, p.code])).toEqual([
      [5, 'metadata.name', 'SAGAMESH_ERR_DEF_SCHEMA'],
      [8, 'spec.deadline', 'SAGAMESH_ERR_DEF_DEADLINE'],
      [10, 'spec.input.schema', 'SAGAMESH_ERR_DEF_SCHEMA'],
      [17, 'spec.steps[0].action.request.body.guest', 'SAGAMESH_ERR_DEF_EXPRESSION'],
      [18, 'spec.steps[0].action.timeout', 'SAGAMESH_ERR_DEF_SCHEMA'],
      [20, 'spec.steps[1].dependsOn[1]', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
      [24, 'spec.steps[1].action.request.url', 'SAGAMESH_ERR_DEF_URL'],
      [25, 'spec.steps[1].action.timout', 'SAGAMESH_ERR_DEF_SCHEMA'],
      [30, 'spec.steps[2].action.request.url', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
      [31, 'spec.upstream', 'SAGAMESH_ERR_DEF_SCHEMA'],
      [35, 'spec.response.success.body.total', 'SAGAMESH_ERR_DEF_EXPRESSION'],
    ]);
    expect(problems.every((p) => p.file === path.join(FIXTURES, 'many-problems', 'broken.yaml'))).toBe(true);
    const timeout = problems[4];
    if (!timeout) throw new Error('missing');
    expect(formatProblem(timeout)).toBe(
      `${path.join(FIXTURES, 'many-problems', 'broken.yaml')}:18:18 spec.steps[0].action.timeout ` +
        'SAGAMESH_ERR_DEF_SCHEMA must be a duration like 500ms, 2s or 1m',
    );
  });

  it('reports the problems of every file, and loads nothing', async () => {
    const err = await loadError(path.join(FIXTURES, 'two-bad-files'));
    const problems = err.details.filter(isDefinitionProblem);
    expect(problems.map((p) => [path.basename(p.file), p.line, p.code])).toEqual([
      ['a.yaml', 8, 'SAGAMESH_ERR_DEF_CYCLE'],
      ['b.yml', 5, 'SAGAMESH_ERR_DEF_SCHEMA'],
      ['b.yml', 8, 'SAGAMESH_ERR_DEF_URL'],
    ]);
  });

  it('refuses the same saga name or match in two files', async () => {
    const err = await loadError(path.join(FIXTURES, 'duplicates'));
    const problems = err.details.filter(isDefinitionProblem);
    expect(problems.map((p) => [path.basename(p.file), p.path, p.code, p.message])).toEqual([
      ['second.yaml', 'metadata.name', 'SAGAMESH_ERR_DEF_DUPLICATE', expect.stringContaining('first.yaml')],
      ['second.yaml', 'spec.match', 'SAGAMESH_ERR_DEF_DUPLICATE', expect.stringContaining('first.yaml')],
    ]);
  });

  it('refuses duplicate step names', () => {
    const text = steps(`    - name: one
      action: { request: { method: POST, url: http://one/x } }
    - name: one
      action: { request: { method: POST, url: http://one/y } }
`);
    expect(problemsOf(text)).toEqual([[9, 'spec.steps[1].name', 'SAGAMESH_ERR_DEF_DUPLICATE']]);
  });

  it.each([
    ['a file with YAML errors', 'a: [1,\nb: 2\n', 'SAGAMESH_ERR_DEF_YAML_SYNTAX'],
    ['two documents', `${BASE}---\n${BASE}`, 'SAGAMESH_ERR_DEF_YAML_SYNTAX'],
    ['an empty file', '# nothing\n', 'SAGAMESH_ERR_DEF_YAML_SYNTAX'],
    ['a list', '- 1\n', 'SAGAMESH_ERR_DEF_SCHEMA'],
    ['duplicate keys', BASE.replace('kind: Saga', 'kind: Saga\nkind: Saga'), 'SAGAMESH_ERR_DEF_YAML_SYNTAX'],
    [
      'a YAML-only value',
      BASE.replace('url: http://one/x', 'url: http://one/x, body: !!binary aGk='),
      'SAGAMESH_ERR_DEF_SCHEMA',
    ],
  ])('refuses %s', (_what, text, code) => {
    expect(problemsOf(text).map(([, , c]) => c)).toContain(code);
  });

  it('points at the second document of a multi-document file', () => {
    expect(problemsOf(`${BASE}---\n${BASE}`)).toEqual([[9, '', 'SAGAMESH_ERR_DEF_YAML_SYNTAX']]);
  });

  it('checks the deadline against the configured maximum', () => {
    const text = BASE.replace('  steps:', '  deadline: 45s\n  steps:');
    expect(load(text).deadlineMs).toBe(45_000);
    expect(problemsOf(text, { maxDeadlineMs: 30_000 })).toEqual([
      [6, 'spec.deadline', 'SAGAMESH_ERR_DEF_DEADLINE'],
    ]);
  });
});

describe('step graph', () => {
  it('orders steps by dependency, keeping file order among ready steps', () => {
    const def = load(
      steps(`    - name: car
      dependsOn: [flight]
      action: { request: { method: POST, url: http://car/x } }
    - name: hotel
      action: { request: { method: POST, url: http://hotel/x } }
    - name: flight
      action: { request: { method: POST, url: http://flight/x } }
    - name: pay
      dependsOn: [car, hotel]
      action: { request: { method: POST, url: http://pay/x } }
`),
    );
    expect(def.steps.map((s) => s.name)).toEqual(['hotel', 'flight', 'car', 'pay']);
  });

  it('reports cycles, including a step that depends on itself', () => {
    const text = steps(`    - name: a
      dependsOn: [c]
      action: { request: { method: POST, url: http://a/x } }
    - name: b
      dependsOn: [a]
      action: { request: { method: POST, url: http://b/x } }
    - name: c
      dependsOn: [b]
      action: { request: { method: POST, url: http://c/x } }
    - name: d
      dependsOn: [d]
      action: { request: { method: POST, url: http://d/x } }
`);
    const { problems } = loadDefinitionText('t.yaml', text);
    expect(problems.map((p) => [p.line, p.code, p.message])).toEqual([
      [8, 'SAGAMESH_ERR_DEF_CYCLE', 'dependency cycle: a → c → b → a'],
      [17, 'SAGAMESH_ERR_DEF_CYCLE', 'step "d" depends on itself'],
    ]);
  });

  it('lets a step read its transitive dependencies and a compensation read its own step', () => {
    const def = load(
      steps(`    - name: a
      action: { request: { method: POST, url: http://a/x } }
    - name: b
      dependsOn: [a]
      action: { request: { method: POST, url: http://b/x } }
    - name: c
      dependsOn: [b]
      action: { request: { method: POST, url: "http://c/\${steps.a.response.body.id}" } }
      compensation: { request: { method: DELETE, url: "http://c/\${steps.c.response.body.id}" } }
`),
    );
    expect(def.steps[2]?.compensation?.request.url.stepRefs).toEqual(['c']);
  });

  it('refuses reads of steps that may not have run', () => {
    const text = steps(`    - name: a
      action:
        request:
          method: POST
          url: http://a/x
          headers: { x-b: "\${steps.b.response.body.id}" }
          body: { self: "\${steps.a.response.body}", ghost: "\${steps.ghost.response}" }
    - name: b
      action:
        request: { method: POST, url: http://b/x, body: "\${steps.*.response}" }
  response:
    success: { body: { b: "\${steps.b.response.body}", all: "\${steps}", nope: "\${steps.nope}" } }
`);
    const { problems } = loadDefinitionText('t.yaml', text);
    expect(problems.map((p) => [p.line, p.path, p.code])).toEqual([
      [12, 'spec.steps[0].action.request.headers.x-b', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
      [13, 'spec.steps[0].action.request.body.self', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
      [13, 'spec.steps[0].action.request.body.ghost', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
      [16, 'spec.steps[1].action.request.body', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
      [18, 'spec.response.success.body.nope', 'SAGAMESH_ERR_DEF_STEP_REFERENCE'],
    ]);
  });
});

describe('URLs and headers', () => {
  it.each([
    ['"${request.body.url}"'],
    ['"http://${request.body.host}/a"'],
    ['"http://one${request.body.suffix}"'],
    ['"gopher://one/a"'],
  ])('refuses a step URL whose destination data could choose: %s', (u) => {
    const text = BASE.replace('url: http://one/x', `url: ${u}`);
    expect(problemsOf(text)).toEqual([[8, 'spec.steps[0].action.request.url', 'SAGAMESH_ERR_DEF_URL']]);
  });

  it('lowercases header names and refuses host and framing headers', () => {
    const def = load(
      BASE.replace('url: http://one/x', 'url: http://one/x, headers: { X-Guest: "${request.body.guest}" }'),
    );
    expect(Object.keys(def.steps[0]?.action.request.headers ?? {})).toEqual(['x-guest']);
    expect(def.input.json).toBe(true);
    const bad = BASE.replace(
      'url: http://one/x',
      'url: http://one/x, headers: { Host: evil, content-length: "1" }',
    );
    expect(problemsOf(bad)).toEqual([
      [8, 'spec.steps[0].action.request.headers.Host', 'SAGAMESH_ERR_DEF_URL'],
      [8, 'spec.steps[0].action.request.headers.content-length', 'SAGAMESH_ERR_DEF_SCHEMA'],
    ]);
  });
});

describe('defaults and modes', () => {
  it('fills in the documented defaults', () => {
    const def = load(
      BASE.replace(
        'action: { request: { method: POST, url: http://one/x } }',
        'action: { request: { method: POST, url: http://one/x } }\n      compensation: { request: { method: DELETE, url: http://one/x } }',
      ),
    );
    expect(def.deadlineMs).toBe(30_000);
    expect(def.respond).toBe('aggregate');
    expect(def.input).toEqual({ json: false });
    expect(def.response.success).toEqual({ status: 200, headers: {} });
    expect(def.response.failure).toEqual({ status: 409 });
    const step = def.steps[0];
    expect(step?.action).toMatchObject({ timeoutMs: 5000, success: [200, 201, 202, 204] });
    expect(step?.action.retry).toEqual({ attempts: 3, backoffMs: 100, maxBackoffMs: 2000 });
    expect(step?.compensation?.retry).toEqual({ attempts: 10, backoffMs: 200, maxBackoffMs: 10_000 });
    expect(step?.compensation?.success).toEqual([200, 202, 204]);
  });

  it('refuses a retry whose cap is below its backoff', () => {
    const text = BASE.replace('http://one/x } }', 'http://one/x }, retry: { backoff: 2s, maxBackoff: 1s } }');
    expect(problemsOf(text)).toEqual([
      [8, 'spec.steps[0].action.retry.maxBackoff', 'SAGAMESH_ERR_DEF_SCHEMA'],
    ]);
  });

  it('refuses a status or body for the success response in pivot mode', () => {
    const text = BASE.replace(
      '  steps:',
      '  respond: upstream\n  response: { success: { status: 201 } }\n  steps:',
    );
    expect(problemsOf(text)).toEqual([[7, 'spec.response.success.status', 'SAGAMESH_ERR_DEF_SCHEMA']]);
  });

  it('refuses an input schema that is not a JSON Schema', () => {
    const text = BASE.replace('  steps:', '  input: { schema: { type: object, requird: [a] } }\n  steps:');
    expect(problemsOf(text)).toEqual([[6, 'spec.input.schema', 'SAGAMESH_ERR_DEF_SCHEMA']]);
  });
});

describe('loading a directory', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sagas-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads a Kubernetes ConfigMap mount: follows the symlinks, skips the ..data entries', async () => {
    const data = path.join(dir, '..2024_01_01_00_00_00.000000000');
    fs.mkdirSync(data);
    fs.writeFileSync(path.join(data, 'base.yaml'), BASE);
    fs.writeFileSync(path.join(data, 'other.yml'), BASE.replace(/base/g, 'other'));
    fs.symlinkSync(path.basename(data), path.join(dir, '..data'));
    fs.symlinkSync(path.join('..data', 'base.yaml'), path.join(dir, 'base.yaml'));
    fs.symlinkSync(path.join('..data', 'other.yml'), path.join(dir, 'other.yml'));
    fs.writeFileSync(path.join(dir, '.hidden.yaml'), 'not: [valid');
    fs.writeFileSync(path.join(dir, 'README.md'), '# not a saga');
    const defs = await loadDefinitions(dir);
    expect(defs.map((d) => d.name)).toEqual(['base', 'other']);
  });

  it('returns nothing for an empty directory', async () => {
    await expect(loadDefinitions(dir)).resolves.toEqual([]);
  });

  it('throws SAGAS_DIR_UNREADABLE for a missing directory', async () => {
    const err = await loadError(path.join(dir, 'missing'));
    expect(err.code).toBe(ERRORS.SAGAS_DIR_UNREADABLE.code);
  });
});

describe('DefinitionSet', () => {
  const a = load(BASE);
  const b = load(BASE.replace(/base/g, 'other').replace('POST', 'GET'));
  const set = new DefinitionSet([a, b]);

  it('matches on method (any case) and path, ignoring the query string', () => {
    expect(set.match('POST', '/base')).toBe(a);
    expect(set.match('post', '/base?x=1&y=2')).toBe(a);
    expect(set.match('get', '/other?')).toBe(b);
    expect(set.match('GET', '/base')).toBeUndefined();
    expect(set.match('POST', '/base/x')).toBeUndefined();
  });

  it('matches the canonical spellings of a path, and names the saga an ambiguous one may mean', () => {
    for (const p of ['/base/', '/BASE', '//base//', '/b%61se', '/B%41SE?x=1']) {
      expect([p, set.match('POST', p)]).toEqual([p, a]);
      expect(set.ambiguous('POST', p)).toBeUndefined();
    }
    for (const p of [
      '/base;x',
      '/base%2F',
      '/base%20',
      '/x/../base',
      '/base.',
      '/ba%C5%BFe',
      '/b%252F/../base',
    ]) {
      expect([p, set.match('POST', p)]).toEqual([p, undefined]);
      expect([p, set.ambiguous('POST', p)]).toEqual([p, a]);
    }
    // Another method, or another path however read: neither a saga nor ambiguous.
    for (const [m, p] of [
      ['GET', '/base;x'],
      ['POST', '/base2'],
      ['POST', '/bases;x'],
      ['POST', '/static/app.js'],
    ] as const) {
      expect([m, p, set.match(m, p), set.ambiguous(m, p)]).toEqual([m, p, undefined, undefined]);
    }
  });

  it('refuses a match path that is not plain, so that its canonical reading is itself', () => {
    for (const bad of [
      '/trips/',
      '/trips;v=1',
      '/tr%69ps',
      '/a//b',
      '/a/./b',
      '/.well-known',
      '/trips.',
      '/a b',
      '/a\\b',
      'trips',
    ]) {
      const text = BASE.replace('path: /base', `path: '${bad}'`);
      expect([bad, problemsOf(text)]).toEqual([bad, [[5, 'spec.match.path', 'SAGAMESH_ERR_DEF_SCHEMA']]]);
    }
    for (const good of ['/', '/Trips', '/v1.0/trips', "/a-b_c~d/!$&'()*+,=:@"]) {
      // A function: a replacement string would read the `$&` in the path as a pattern.
      expect(load(BASE.replace('path: /base', () => `path: "${good}"`)).match.path).toBe(good);
    }
  });

  it('looks up by name and lists all', () => {
    expect(set.get('other')).toBe(b);
    expect(set.get('nope')).toBeUndefined();
    expect(set.size).toBe(2);
    expect(set.list()).toEqual([a, b]);
  });

  it('refuses two definitions with one match', () => {
    expect(() => new DefinitionSet([a, a])).toThrow(SagameshError);
  });
});

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1m', 60_000],
    ['0ms', 0],
  ])('parses %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['2', '1.5s', '1h', ' 1s', '-1s', '1S'])('refuses %s', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('formats with the largest exact unit', () => {
    expect([0, 1500, 2000, 60_000, 90_000].map(formatDuration)).toEqual(['0ms', '1500ms', '2s', '1m', '90s']);
  });
});
