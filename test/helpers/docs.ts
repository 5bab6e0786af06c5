import fs from 'node:fs';
import path from 'node:path';

/**
 * The code blocks of README.md and docs/*.md, for the docs tests (test/unit/docs-examples.test.ts,
 * test/integration/docs-examples.test.ts): every command, request and output the docs show is run
 * by one of them, or its block is marked as not runnable.
 *
 * A block is marked by an HTML comment on the line before its fence (a blank line between is
 * allowed), invisible when the page is rendered:
 *
 *   <!-- docs-test: skip (needs a cluster) -->   not an example that can run here; the reason is listed
 *   <!-- docs-test: demo-stack -->               run by the integration test against the demo stack
 *   <!-- docs-test: demo-stack keys: a booking -->  a JSON answer whose keys the integration test
 *                                                compares with the real one its producer `a booking` gets
 *   <!-- docs-test: demo-stack answer: a stuck itinerary -->  a JSON answer the integration test compares,
 *                                                value for value, with the one its producer gets
 *                                                (`"…"` and `[ … ]` stand for any value)
 *   <!-- docs-test: paths -->                    a file list: every path in its first column exists
 *
 * Unmarked blocks are checked by what they are: a `yaml` block with `kind: Saga` must load, a `json`
 * block must parse, a `console` block of `sagamesh validate`/`graph` runs. Anything else unmarked
 * fails the unit test, so a new example cannot slip in untested.
 *
 * Shown outputs are compared with what the run printed, modulo volatile values (matchShown).
 */

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface DocBlock {
  /** Relative to the repository root, e.g. `docs/cli.md`. */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  readonly text: string;
  /** The `docs-test:` mark before the block, without the prefix: `skip (reason)`, `demo-stack`, … */
  readonly mark: string | undefined;
}

export function docFiles(): string[] {
  const docs = fs
    .readdirSync(path.join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

export function blocksOf(file: string, markdown: string): DocBlock[] {
  const lines = markdown.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] ?? '');
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i] ?? '');
    let before = start - 1;
    if (before >= 0 && (lines[before] ?? '').trim() === '') before--;
    const mark = /^<!--\s*docs-test:\s*(.*?)\s*-->$/.exec((lines[before] ?? '').trim())?.[1];
    blocks.push({ file, line: start + 1, lang: open[1] ?? '', text: body.join('\n'), mark });
  }
  return blocks;
}

export function allBlocks(): DocBlock[] {
  return docFiles().flatMap((f) => blocksOf(f, fs.readFileSync(path.join(REPO_ROOT, f), 'utf8')));
}

export function where(block: DocBlock): string {
  return `${block.file}:${block.line} (${block.lang || 'plain'})`;
}

/** `skip (reason)` → the reason; undefined for any other mark. */
export function skipReason(block: DocBlock): string | undefined {
  const m = /^skip\s*\((.+)\)$/.exec(block.mark ?? '');
  return m?.[1];
}

// --- console sessions -------------------------------------------------------------------------

export interface ConsoleStep {
  /** The command as shown, `\`-continued lines joined with their newlines. */
  readonly command: string;
  /** What the docs show it printed (stdout then stderr, as a terminal shows them). */
  readonly shown: string;
}

/** A ```console block: `$ command` lines (continued with a trailing `\`), each followed by its output. */
export function consoleSteps(text: string): ConsoleStep[] {
  const steps: { command: string; shown: string[] }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('$ ')) {
      let command = line.slice(2);
      while (command.endsWith('\\') && i + 1 < lines.length) command += `\n${lines[++i] ?? ''}`;
      steps.push({ command, shown: [] });
    } else if (steps.length === 0) {
      throw new Error(`console block: output before the first command: ${line}`);
    } else {
      steps[steps.length - 1]?.shown.push(line);
    }
  }
  return steps.map((s) => ({ command: s.command, shown: s.shown.map((l) => `${l}\n`).join('') }));
}

// --- shown output against real output ---------------------------------------------------------

/**
 * The volatile values of a shown output: a doc value of one of these kinds matches any run value of
 * the same kind. An id (`bound`) stands for one thing: the same shown id must be the same actual id
 * throughout a session, and a later command using it gets the actual one. Times and durations are
 * each free. Definition versions are not volatile: they are hashes of the saga files, so a doc
 * shows the real one.
 */
export const VOLATILE: readonly {
  readonly kind: string;
  readonly pattern: string;
  readonly bound: boolean;
}[] = [
  { kind: 'uuid', pattern: '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', bound: true },
  { kind: 'booking', pattern: '(?:hotel|flight|car)-[0-9a-f]{16}', bound: true },
  { kind: 'time', pattern: '\\d{4}-\\d{2}-\\d{2}[ T]\\d{2}:\\d{2}:\\d{2}(?:\\.\\d+)?Z', bound: false },
  { kind: 'epochms', pattern: '1\\d{12}', bound: false },
  { kind: 'duration', pattern: '\\d+ ms|\\d+\\.\\d+ s|\\d+ min \\d+ s', bound: false },
];

const VOLATILE_RE = new RegExp(VOLATILE.map((v) => `(${v.pattern})`).join('|'), 'g');

export type Bindings = Map<string, string>;

/**
 * Whether `actual` is what `shown` shows, by this rule: lines are compared without trailing
 * spaces, and a run of spaces matches any run (table columns are as wide as their widest cell); a
 * volatile value (VOLATILE) matches any value of its kind, and a shown id must stand for the same
 * actual id everywhere (in `bindings`, which carries over between the steps of a session): a saga
 * id shown twice must be one saga twice. Everything else is compared exactly.
 * Returns the bindings (shown value → actual value), or undefined when the output drifted.
 */
export function matchShown(
  shown: string,
  actual: string,
  bindings: Bindings = new Map(),
): Bindings | undefined {
  const norm = (s: string): string =>
    s
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n');
  const expected = norm(shown);
  const groups = new Map<string, string>(); // shown value → group name
  let source = '';
  let last = 0;
  const literal = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/ +/g, ' +');
  for (const m of expected.matchAll(VOLATILE_RE)) {
    source += literal(expected.slice(last, m.index));
    last = m.index + m[0].length;
    const value = m[0];
    const kind = VOLATILE.findIndex((_, i) => m[i + 1] !== undefined);
    if (!VOLATILE[kind]?.bound) {
      source += `(?:${VOLATILE[kind]?.pattern ?? ''})`;
      continue;
    }
    const bound = bindings.get(value);
    if (bound !== undefined) {
      source += literal(bound);
      continue;
    }
    const name = groups.get(value);
    if (name !== undefined) {
      source += `\\k<${name}>`;
      continue;
    }
    const group = `v${groups.size}`;
    groups.set(value, group);
    source += `(?<${group}>${VOLATILE[kind]?.pattern ?? ''})`;
  }
  source += literal(expected.slice(last));
  const match = new RegExp(`^${source}$`).exec(norm(actual));
  if (!match) return undefined;
  const out = new Map(bindings);
  for (const [value, group] of groups) out.set(value, match.groups?.[group] ?? '');
  return out;
}

/** Replaces every shown volatile value bound so far by its actual value (for the next command). */
export function substitute(text: string, bindings: Bindings): string {
  let out = text;
  for (const [shown, actual] of bindings) out = out.split(shown).join(actual);
  return out;
}

// --- answer shapes, as docs/admin.md writes them ---------------------------------------------

/**
 * An answer's shape as the docs write it: `{ sagaId, status: "aborting" }`,
 * `{ ready, checks: { definitions, draining, store }, reasons }`, `{ sagas: [{ sagaId, … }] }` or
 * plain JSON. A bare key is any value, and `key?` one the answer may leave out; `key: "literal"` (or a number, true, false, null) that
 * value; `key: { … }` an object, `key: [ … ]` an array whose every element has that shape.
 */
export type Shape =
  | { readonly type: 'any' }
  | { readonly type: 'value'; readonly value: unknown }
  | {
      readonly type: 'object';
      readonly keys: ReadonlyMap<string, Shape>;
      readonly optional: ReadonlySet<string>;
    }
  | { readonly type: 'array'; readonly of: Shape | undefined };

export function parseShape(text: string): Shape {
  const tokens = text.match(/"(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+/g) ?? [];
  let i = 0;
  const next = (): string => tokens[i++] ?? '';
  const peek = (): string => tokens[i] ?? '';
  const value = (): Shape => {
    const t = next();
    if (t === '{') {
      const keys = new Map<string, Shape>();
      const optional = new Set<string>();
      while (peek() !== '}') {
        const written = next().replace(/^"(.*)"$/, '$1');
        const key = written.replace(/\?$/, '');
        if (key !== written) optional.add(key);
        keys.set(key, peek() === ':' ? (next(), value()) : { type: 'any' });
        if (peek() === ',') next();
        else if (peek() !== '}') throw new Error(`shape: expected , or } at ${peek()} in ${text}`);
      }
      next();
      return { type: 'object', keys, optional };
    }
    if (t === '[') {
      const of = peek() === ']' ? undefined : value();
      if (next() !== ']') throw new Error(`shape: expected ] in ${text}`);
      return { type: 'array', of };
    }
    return { type: 'value', value: JSON.parse(t) as unknown };
  };
  const shape = value();
  if (i !== tokens.length) throw new Error(`shape: trailing ${tokens.slice(i).join(' ')} in ${text}`);
  return shape;
}

/** Where `actual` differs from `shape` (an object must have exactly the keys shown); [] when it fits. */
export function shapeDrift(shape: Shape, actual: unknown, at = '$'): string[] {
  switch (shape.type) {
    case 'any':
      return [];
    case 'value':
      return JSON.stringify(actual) === JSON.stringify(shape.value)
        ? []
        : [`${at}: ${JSON.stringify(actual)}, shown ${JSON.stringify(shape.value)}`];
    case 'array':
      if (!Array.isArray(actual)) return [`${at}: not an array`];
      if (actual.length === 0) return [`${at}: empty, so nothing to compare`];
      return shape.of ? actual.flatMap((a, n) => shapeDrift(shape.of as Shape, a, `${at}[${n}]`)) : [];
    case 'object': {
      if (typeof actual !== 'object' || actual === null || Array.isArray(actual))
        return [`${at}: not an object`];
      const keys = Object.keys(actual);
      return [
        ...keys.filter((k) => !shape.keys.has(k)).map((k) => `${at}.${k}: not shown`),
        ...[...shape.keys.keys()]
          .filter((k) => !(k in actual) && !shape.optional.has(k))
          .map((k) => `${at}.${k}: shown, absent`),
        ...[...shape.keys].flatMap(([k, s]) =>
          k in actual ? shapeDrift(s, (actual as Record<string, unknown>)[k], `${at}.${k}`) : [],
        ),
      ];
    }
  }
}

/**
 * Where a real JSON answer differs from one a doc shows in full (`demo-stack answer:` blocks): the
 * same keys and the same values, except that `"…"` and `[ … ]` in the doc stand for any value.
 */
export function answerDrift(shownText: string, actual: unknown): string[] {
  const ANY = '\u2026';
  const shown = JSON.parse(shownText.replace(/\[\s*…\s*\]/g, '"…"')) as unknown;
  const drift = (want: unknown, got: unknown, at: string): string[] => {
    if (want === ANY) return [];
    if (Array.isArray(want)) {
      if (!Array.isArray(got) || got.length !== want.length)
        return [`${at}: ${JSON.stringify(got)}, shown ${JSON.stringify(want)}`];
      return want.flatMap((w, n) => drift(w, got[n], `${at}[${n}]`));
    }
    if (typeof want === 'object' && want !== null) {
      if (typeof got !== 'object' || got === null || Array.isArray(got)) return [`${at}: not an object`];
      const g = got as Record<string, unknown>;
      const w = want as Record<string, unknown>;
      return [
        ...Object.keys(g)
          .filter((k) => !(k in w))
          .map((k) => `${at}.${k}: not shown`),
        ...Object.keys(w)
          .filter((k) => !(k in g))
          .map((k) => `${at}.${k}: shown, absent`),
        ...Object.keys(w)
          .filter((k) => k in g)
          .flatMap((k) => drift(w[k], g[k], `${at}.${k}`)),
      ];
    }
    return JSON.stringify(want) === JSON.stringify(got)
      ? []
      : [`${at}: ${JSON.stringify(got)}, shown ${JSON.stringify(want)}`];
  };
  return drift(shown, actual, '$');
}
