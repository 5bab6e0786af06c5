/**
 * A command line as the shell splits it, for the examples the docs tests run in-process: words
 * separated by blanks, `'…'` and `"…"` quoting, `\` escaping and `\`-newline continuing. No
 * expansion: a docs example that needs the shell runs under bash instead.
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? '';
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word = (word ?? '') + (line[++i] ?? '');
      else word = (word ?? '') + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? '';
    } else if (c === '\\') {
      const next = line[++i] ?? '';
      if (next !== '\n') word = (word ?? '') + next;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}
