import { loadDefinitionText } from '../../src/saga/loader';

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
