import { SagameshError } from '../../src/errors';
import type { SagaDefinition } from '../../src/definition/definition';
import { DefinitionSet } from '../../src/definition/definition-set';
import path from 'node:path';
import { loadDefinitions, loadDefinitionText } from '../../src/definition/loader';

/** `spec.undo` (docs/saga-format.md, docs/nested-sagas.md): how it loads and how requests meet it. */
const saga = (name: string, path: string, extra: string): string => `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: ${name} }
spec:
  match: { method: POST, path: ${path} }
${extra}
  steps:
    - name: one
      action: { request: { method: POST, url: http://one/x } }
      compensation: { request: { method: DELETE, url: http://one/x } }
`;

function load(text: string): SagaDefinition {
  const { definition, problems } = loadDefinitionText('t.yaml', text);
  expect(problems).toEqual([]);
  if (!definition) throw new Error('no definition');
  return definition;
}

const problems = (text: string): string[] =>
  loadDefinitionText('t.yaml', text).problems.map((p) => `${p.code} ${p.path}: ${p.message}`);

describe('spec.undo', () => {
  it('loads an undo route with one {sagaId} segment', () => {
    const def = load(
      saga('trips', '/trips', '  undo: { match: { method: DELETE, path: "/trips/{sagaId}" } }'),
    );
    expect(def.undo).toEqual({ match: { method: 'DELETE', path: '/trips/{sagaId}' } });
  });

  it.each([
    ['/trips', 'must hold {sagaId} as one whole segment, once'],
    ['/trips/{sagaId}/{sagaId}', 'must hold {sagaId} as one whole segment, once'],
    ['/trips/x{sagaId}', 'a path like /trips/{sagaId}'],
    ['/trips/{id}', 'a path like /trips/{sagaId}'],
  ])('refuses the undo path %s', (path, message) => {
    const found = problems(saga('trips', '/trips', `  undo: { match: { method: DELETE, path: "${path}" } }`));
    expect(found).toEqual([expect.stringContaining(message)]);
    expect(found[0]).toMatch(/^SAGAMESH_ERR_DEF_SCHEMA spec\.undo\.match\.path/);
  });

  it('refuses an undo for a pivot saga: the upstream is no step', () => {
    expect(
      problems(
        saga(
          'trips',
          '/trips',
          '  respond: upstream\n  undo: { match: { method: DELETE, path: "/trips/{sagaId}" } }',
        ),
      ),
    ).toEqual([
      expect.stringMatching(/^SAGAMESH_ERR_DEF_SCHEMA spec\.undo: is only allowed with respond: aggregate/),
    ]);
  });

  it('matches the undo route by its canonical reading, takes the id, and refuses an odd spelling', () => {
    const trips = load(
      saga('trips', '/trips', '  undo: { match: { method: DELETE, path: "/trips/{sagaId}" } }'),
    );
    const set = new DefinitionSet([trips]);
    expect(set.matchUndo('DELETE', '/trips/abc-1')).toEqual({ definition: trips, sagaId: 'abc-1' });
    expect(set.matchUndo('delete', '/TRIPS/ABC-1/?x=1')).toEqual({ definition: trips, sagaId: 'abc-1' });
    expect(set.matchUndo('DELETE', '/trips')).toBeUndefined();
    expect(set.matchUndo('DELETE', '/trips/a/b')).toBeUndefined();
    expect(set.matchUndo('POST', '/trips/abc-1')).toBeUndefined();
    expect(set.match('DELETE', '/trips/abc-1')).toBeUndefined();
    expect(set.ambiguousUndo('DELETE', '/trips/abc-1;x')).toBe(trips);
    expect(set.ambiguousUndo('DELETE', '/trips/abc-1')).toBeUndefined();
  });

  it('refuses two definitions whose undo routes one path could match', () => {
    const a = load(saga('a', '/a', '  undo: { match: { method: DELETE, path: "/x/{sagaId}" } }'));
    const b = load(saga('b', '/b', '  undo: { match: { method: DELETE, path: "/X/{sagaId}" } }'));
    expect(() => new DefinitionSet([a, b])).toThrow(SagameshError);
    const c = load(saga('c', '/c', '  undo: { match: { method: DELETE, path: "/y/{sagaId}" } }'));
    expect(() => new DefinitionSet([a, c])).not.toThrow();
  });

  it("loads the nested demo's agency (npm start) with book-trip, each with its undo route", async () => {
    const root = path.join(__dirname, '..', '..');
    const defs = [
      ...(await loadDefinitions(path.join(root, 'sagas'))),
      ...(await loadDefinitions(path.join(root, 'demo', 'agency'))),
    ];
    const undos = Object.fromEntries(defs.map((d) => [d.name, d.undo?.match.path]));
    expect(undos).toMatchObject({ 'book-trip': '/trips/{sagaId}', 'agency-trip': '/agency/trips/{sagaId}' });
  });
});
