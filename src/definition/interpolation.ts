/**
 * Splits `text` into literal text and expression sources. The end of an expression is the `}` that
 * closes its `${`, skipping braces inside JSONata strings, backquoted names and comments, so
 * `${ {'a': '}'}.a }` is one expression. `$${` stands for a literal `${`.
 */
export function splitInterpolation(
  text: string,
): { pieces: (string | { source: string })[] } | { error: string } {
  const pieces: (string | { source: string })[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      literal += '${';
      i += 3;
    } else if (text.startsWith('${', i)) {
      const end = closingBrace(text, i + 2);
      if (end < 0) return { error: `unterminated \${ at character ${i + 1}` };
      const source = text.slice(i + 2, end);
      if (source.trim() === '') return { error: `empty \${} at character ${i + 1}` };
      if (literal !== '') pieces.push(literal);
      literal = '';
      pieces.push({ source });
      i = end + 1;
    } else {
      literal += text[i];
      i += 1;
    }
  }
  if (literal !== '' || pieces.length === 0) pieces.push(literal);
  return { pieces };
}

function closingBrace(text: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'") {
      i += 1;
      while (i < text.length && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
    } else if (c === '`') {
      i = text.indexOf('`', i + 1);
      if (i < 0) return -1;
    } else if (c === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i + 2);
      if (i < 0) return -1;
      i += 1;
    } else if (c === '{') depth += 1;
    else if (c === '}') {
      if (depth === 0) return i;
      depth -= 1;
    }
    i += 1;
  }
  return -1;
}

/** The `${…}` sources in every string of `values`; strings that are not templates yield none. */
export function* expressionSources(values: readonly unknown[]): Generator<string> {
  const pending: unknown[] = [...values];
  while (pending.length > 0) {
    const v = pending.pop();
    if (typeof v === 'string') {
      const split = splitInterpolation(v);
      if ('pieces' in split) for (const p of split.pieces) if (typeof p !== 'string') yield p.source;
    } else if (typeof v === 'object' && v !== null)
      for (const item of Object.values(v) as unknown[]) pending.push(item);
  }
}
