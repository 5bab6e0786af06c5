import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SagameshError } from '../../src/errors';
import {
  isDefinitionProblem,
  loadDefinitionFile,
  loadDefinitionText,
  loadDefinitions,
} from '../../src/definition/loader';

/**
 * What a definition may ask for: durations a timer can hold, and sizes whose checking and
 * compiling stays bounded. Each limit is refused at load with file:line, like every other problem.
 */

const BASE = `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: base }
spec:
  match: { method: POST, path: /base }
  steps:
    - name: one
      action: { request: { method: POST, url: http://one/x } }
`;

/** [line, path, code, message] of each problem. */
function problemsOf(text: string, opts?: { maxDeadlineMs?: number }): [number, string, string, string][] {
  const { definition, problems } = loadDefinitionText('t.yaml', text, opts);
  expect(definition).toBeUndefined();
  return problems.map((p) => [p.line, p.path, p.code, p.message]);
}

const withCall = (call: string): string =>
  BASE.replace('action: { request: { method: POST, url: http://one/x } }', `action: { ${call} }`);
const request = 'request: { method: POST, url: http://one/x }';

describe('durations', () => {
  it.each([
    ['timeout: 99999999m', 'spec.steps[0].action.timeout'],
    ['timeout: 61m', 'spec.steps[0].action.timeout'],
    ['retry: { backoff: 3600001ms }', 'spec.steps[0].action.retry.backoff'],
    ['retry: { maxBackoff: 999999999s }', 'spec.steps[0].action.retry.maxBackoff'],
  ])('refuses %s: a timer cannot hold it, and no call should wait that long', (field, path) => {
    expect(problemsOf(withCall(`${request}, ${field}`))).toEqual([
      [8, path, 'SAGAMESH_ERR_DEF_SCHEMA', 'must be at most 60m'],
    ]);
  });

  it('accepts exactly the maximum', () => {
    const text = withCall(`${request}, timeout: 60m, retry: { backoff: 3600s, maxBackoff: 3600000ms }`);
    const { definition } = loadDefinitionText('t.yaml', text);
    expect(definition?.steps[0]?.action).toMatchObject({
      timeoutMs: 3_600_000,
      retry: { backoffMs: 3_600_000, maxBackoffMs: 3_600_000 },
    });
  });

  it('refuses a compensation timeout and backoff the same way', () => {
    const text = BASE.replace(
      '    - name: one\n',
      '    - name: one\n      compensation: { request: { method: DELETE, url: http://one/x }, timeout: 100m, retry: { backoff: 100m } }\n',
    );
    expect(problemsOf(text).map(([, path, code]) => [path, code])).toEqual([
      ['spec.steps[0].compensation.timeout', 'SAGAMESH_ERR_DEF_SCHEMA'],
      ['spec.steps[0].compensation.retry.backoff', 'SAGAMESH_ERR_DEF_SCHEMA'],
    ]);
  });
});

/** `count` steps, one line each. */
const manySteps = (count: number): string =>
  BASE.replace(
    / {4}- name: one\n.*\n/,
    Array.from(
      { length: count },
      (_, i) => `    - { name: s${i}, action: { request: { method: GET, url: 'http://a/' } } }\n`,
    ).join(''),
  );

/** A saga named `name` whose one step's body holds `count` distinct expressions. */
const withExpressions = (count: number, name = 'base'): string =>
  BASE.replace('name: base', `name: ${name}`)
    .replace('/base', `/${name}`)
    .replace(
      'url: http://one/x }',
      `url: http://one/x, body: { ${Array.from({ length: count }, (_, i) => `k${i}: '\${request.body.k${i}}'`).join(', ')} } }`,
    );

function sagasDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-limits-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

async function dirProblems(dir: string): Promise<[string, number, string, string][]> {
  const err: unknown = await loadDefinitions(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof SagameshError)) throw new Error(`expected a SagameshError, got ${String(err)}`);
  return err.details
    .filter(isDefinitionProblem)
    .map((p) => [path.basename(p.file), p.line, p.code, p.message]);
}

describe('definition size', () => {
  it('takes 100 steps and refuses 101 at spec.steps, without checking them one by one', () => {
    expect(loadDefinitionText('t.yaml', manySteps(100)).definition?.steps).toHaveLength(100);
    expect(problemsOf(manySteps(101))).toEqual([
      [7, 'spec.steps', 'SAGAMESH_ERR_DEF_TOO_LARGE', '101 steps; a saga may have at most 100'],
    ]);
  });

  it('refuses 3,000 steps (a quadratic step graph: seconds before) with one problem', () => {
    const text = manySteps(3000);
    expect(Buffer.byteLength(text)).toBeLessThan(256 * 1024);
    expect(problemsOf(text).map(([line, p, code]) => [line, p, code])).toEqual([
      [7, 'spec.steps', 'SAGAMESH_ERR_DEF_TOO_LARGE'],
    ]);
  });

  it('refuses a file past 256 KiB unread, and still checks every other file', async () => {
    const huge = `${BASE}# ${'x'.repeat(256 * 1024)}\n: [not yaml`;
    const dir = sagasDir({
      'a-huge.yaml': huge,
      'b-bad.yaml': BASE.replace('method: POST, path', 'method: PUSH, path'),
    });
    expect(await dirProblems(dir)).toEqual([
      [
        'a-huge.yaml',
        1,
        'SAGAMESH_ERR_DEF_TOO_LARGE',
        `the file holds ${Buffer.byteLength(huge)} bytes; a saga file may hold 262144 bytes (256 KiB)`,
      ],
      [
        'b-bad.yaml',
        5,
        'SAGAMESH_ERR_DEF_SCHEMA',
        'must be one of: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      ],
    ]);
  });

  it('refuses the files past 1 MiB in all', async () => {
    const padded = (name: string): string =>
      `${BASE.replace('name: base', `name: ${name}`).replace('/base', `/${name}`)}# ${'x'.repeat(250 * 1024)}\n`;
    const dir = sagasDir(Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((n) => [`${n}.yaml`, padded(n)])));
    expect((await dirProblems(dir)).map(([file, line, code]) => [file, line, code])).toEqual([
      ['e.yaml', 1, 'SAGAMESH_ERR_DEF_TOO_LARGE'],
    ]);
  });

  it('refuses more than 2,000 distinct expressions in a file, before compiling them', () => {
    expect(loadDefinitionText('t.yaml', withExpressions(2000)).definition).toBeDefined();
    expect(problemsOf(withExpressions(2001))).toEqual([
      [
        1,
        '',
        'SAGAMESH_ERR_DEF_TOO_LARGE',
        'the file holds 2001 distinct expressions; a saga file may hold at most 2000',
      ],
    ]);
  });

  it('counts the expressions of a directory together', async () => {
    const dir = sagasDir({
      'a.yaml': withExpressions(1500, 'a'),
      'b.yaml': withExpressions(501, 'b'),
    });
    expect((await dirProblems(dir)).map(([file, line, code]) => [file, line, code])).toEqual([
      ['b.yaml', 1, 'SAGAMESH_ERR_DEF_TOO_LARGE'],
    ]);
  });

  it('refuses a 10 MB file in validate without parsing it', async () => {
    const dir = sagasDir({ 'big.yaml': `${BASE}# ${'x'.repeat(10_000_000)}\n` });
    const { problems } = await loadDefinitionFile(path.join(dir, 'big.yaml'));
    expect(problems.map((p) => [p.line, p.code])).toEqual([[1, 'SAGAMESH_ERR_DEF_TOO_LARGE']]);
  });
});
