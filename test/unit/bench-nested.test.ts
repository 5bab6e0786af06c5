import { NESTED_TOPOLOGIES, middleDefinition, nestedRequest, rootDefinition } from '../../bench/nested';
import { loadDefinitionText } from '../../src/definition/loader';

/** The nested bench's generated definitions are sagas sagamesh loads as they are (bench/nested.ts). */
describe.each(NESTED_TOPOLOGIES)('nested bench topology $name', (t) => {
  it('has a root saga with one step per middle service', () => {
    const root = loadDefinitionText(`root-${t.name}.yaml`, rootDefinition(t));
    expect(root.problems).toEqual([]);
    expect(root.definition?.steps.map((s) => s.name)).toEqual(
      Array.from({ length: t.middles }, (_, i) => `m${i + 1}`),
    );
  });

  it('has a middle saga over its leaves, with an undo route for its parent', () => {
    const middle = loadDefinitionText(`middle-${t.name}.yaml`, middleDefinition(t));
    expect(middle.problems).toEqual([]);
    expect(middle.definition?.steps).toHaveLength(t.leaves);
    expect(middle.definition?.undo).toBeDefined();
  });

  it('sends every middle its leaves’ payloads', () => {
    const body = nestedRequest(t, (i) => `m${i + 1}`);
    expect(Object.keys(body)).toHaveLength(t.middles);
    expect(Object.keys(body['m1'] as object)).toHaveLength(t.leaves);
  });
});
