import { DEFAULT_BODY_LIMITS, jsonShapeProblem } from '../../src/json-limits';

/** The one-pass measure of a JSON text's depth and values, against what JSON.parse builds. */

/** Depth and value count of a parsed value, the slow way (recursion is fine for small test data). */
function measure(value: unknown): { depth: number; values: number } {
  if (typeof value !== 'object' || value === null) return { depth: 0, values: 0 };
  const children = Object.values(value);
  let depth = 0;
  let values = children.length;
  for (const child of children) {
    const m = measure(child);
    depth = Math.max(depth, m.depth);
    values += m.values;
  }
  return { depth: depth + 1, values };
}

const exactly = (text: string) => {
  const { depth, values } = measure(JSON.parse(text));
  return {
    fits: jsonShapeProblem(text, { maxDepth: depth, maxValues: values }),
    tooDeep: depth > 0 ? jsonShapeProblem(text, { maxDepth: depth - 1, maxValues: values }) : 'n/a',
    tooMany: values > 0 ? jsonShapeProblem(text, { maxDepth: depth, maxValues: values - 1 }) : 'n/a',
  };
};

describe('jsonShapeProblem', () => {
  it.each([
    '1',
    '"text"',
    '[]',
    '{}',
    '{"a":[1,[2]],"b":{}}',
    ' [ 1 , { "k" : [ ] } , "x" ] ',
    // Brackets, braces, commas, quotes and escapes inside strings are text, not structure.
    '{"s":"[[[{{{,,,\\"]]]}}}\\\\","t":["\\u005b",",",""]}',
    '[[[[[[[[[[1]]]]]]]]]]',
  ])('measures %s exactly as JSON.parse builds it', (text) => {
    const r = exactly(text);
    expect(r.fits).toBeUndefined();
    if (r.tooDeep !== 'n/a') expect(r.tooDeep).toMatch(/nests more than \d+ levels deep/);
    if (r.tooMany !== 'n/a') expect(r.tooMany).toMatch(/holds more than \d+ values/);
  });

  it('refuses a deep body by its first levels, however deep it goes (no recursion)', () => {
    const depth = 1_000_000;
    const text = '['.repeat(depth) + ']'.repeat(depth);
    expect(jsonShapeProblem(text, DEFAULT_BODY_LIMITS)).toBe('the body nests more than 64 levels deep');
    expect(jsonShapeProblem(text, { maxDepth: depth, maxValues: depth })).toBeUndefined();
  });

  it('counts array items and object members over the whole document', () => {
    const items = JSON.stringify({ a: Array(6000).fill(0), b: Array(4000).fill({ k: 1 }) });
    // 2 members + 6,000 + 4,000 items + 4,000 inner members.
    expect(jsonShapeProblem(items, { maxDepth: 64, maxValues: 14_002 })).toBeUndefined();
    expect(jsonShapeProblem(items, DEFAULT_BODY_LIMITS)).toBe(
      'the body holds more than 10000 values (array items and object members)',
    );
  });
});
