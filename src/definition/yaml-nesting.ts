/**
 * How deep a YAML text nests, measured in one pass over its lines before it is parsed. The yaml
 * library parses nesting recursively: about 1,000 levels (`[` × 1,000, or `- ` × 20,000 on one
 * line) overflow its stack, and after such an overflow V8 aborted the whole process on a later
 * parse ("FATAL ERROR: RegExpCompiler Allocation failed"; found by fuzzing,
 * test/unit/fuzz-definitions.test.ts). A saga definition nests a few dozen levels at most.
 *
 * The count errs on the high side, never the low one: every flow bracket outside a quoted scalar
 * or a comment counts, and a quoted scalar is taken to end with its line at the latest. Levels are
 * the indentation levels open above a line, the compact indicators (`- `, `? `, `: `) at its
 * start, and the flow brackets open. Example: `a:\n  - [ {b: 1} ]` nests 4 deep at `b`.
 */
export const MAX_YAML_NESTING = 100;

const FLOW_START = new Set(['[', '{', ',', ':', '-', '?', ' ', '\t']);

/** What nests too deep (a sentence for the problem), or undefined. */
export function yamlNestingProblem(text: string, max = MAX_YAML_NESTING): string | undefined {
  const indents: number[] = [];
  let flow = 0;
  for (const line of text.split('\n')) {
    let i = 0;
    if (flow === 0) {
      while (line[i] === ' ') i++;
      if (i === line.length || line[i] === '#') continue; // blank or comment: no level
      while (indents.length > 0 && (indents[indents.length - 1] ?? 0) >= i) indents.pop();
      indents.push(i);
      // Compact nesting on one line: `- - - x`, `? ? x`.
      let compact = 0;
      for (
        let m = /^[-?:](?=[ \t]|$)[ \t]*/.exec(line.slice(i));
        m;
        m = /^[-?:](?=[ \t]|$)[ \t]*/.exec(line.slice(i))
      ) {
        i += m[0].length;
        if (++compact + indents.length > max) return tooDeep(max);
        if (m[0].length === 1) break;
      }
      if (indents.length + compact > max) return tooDeep(max);
    }
    let quote: string | undefined;
    for (let prev = i > 0 ? ' ' : ''; i < line.length; prev = line[i] ?? '', i++) {
      const c = line[i] ?? '';
      if (quote) {
        if (c === '\\' && quote === '"') i++;
        else if (c === quote) quote = undefined;
        continue;
      }
      if ((c === '"' || c === "'") && (prev === '' || FLOW_START.has(prev))) quote = c;
      else if (c === '#' && (prev === '' || prev === ' ' || prev === '\t')) break;
      else if (c === '[' || c === '{') {
        if (++flow + indents.length > max) return tooDeep(max);
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
    }
  }
  return undefined;
}

const tooDeep = (max: number): string =>
  `the YAML nests more than ${max} levels deep; a saga definition needs a few dozen at most`;
