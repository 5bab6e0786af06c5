import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { ERRORS, SagameshError } from '../errors';
import { compileSaga } from './compile-saga';
import { DEFINITION_LIMITS } from './definition-limits';
import { expressionSources } from './interpolation';
import type { KnownExpressions } from './expression';
import type { SagaCompileResult } from './compile-saga';
import type { SagaDefinition } from './definition';
import { ProblemCollector } from './problems';
import type { DefinitionProblem } from './problems';
import { yamlNestingProblem } from './yaml-nesting';

export { formatProblem, isDefinitionProblem } from './problems';
export type { DefinitionProblem } from './problems';

export interface LoadOptions {
  /** No saga may have a longer deadline; default 60000. */
  readonly maxDeadlineMs?: number | undefined;
}

/**
 * Reads every `*.yaml` / `*.yml` in `dir` (not sub-directories; dotfiles and the `..data` entries
 * of a Kubernetes ConfigMap mount are skipped, the symlinks to the files are followed), checks all
 * of them and returns the definitions sorted by name. It never half-loads: if anything in any file
 * is wrong it throws SagameshError(DEFINITIONS_INVALID) whose details list every problem of every
 * file. A directory or file that cannot be read is SagameshError(SAGAS_DIR_UNREADABLE).
 */
export async function loadDefinitions(dir: string, opts: LoadOptions = {}): Promise<SagaDefinition[]> {
  return definitionsOf(await checkDirectory(dir, opts));
}

/**
 * Reads and checks a directory as loadDefinitions does, and returns each file's result, problems
 * included (what a load worker sends back: load-worker.ts).
 */
export async function checkDirectory(dir: string, opts: LoadOptions = {}): Promise<FileResult[]> {
  const files = await readSagaFiles(dir);
  // Expressions are what compiling costs most (~65 µs and ~16 KB each): counted over the directory.
  let expressionsLeft = DEFINITION_LIMITS.expressions;
  const results = files.map((f) => {
    if (!('text' in f)) return tooLarge(f);
    const result = analyseFile(f.file, f.text, opts, expressionsLeft);
    expressionsLeft -= result.expressions ?? 0;
    return result;
  });
  checkAcrossFiles(results);
  return results;
}

/** The definitions of a whole load, sorted by name; SagameshError(DEFINITIONS_INVALID) on any problem. */
export function definitionsOf(results: readonly FileResult[]): SagaDefinition[] {
  const problems = results.flatMap((r) => r.out.problems);
  if (problems.length > 0) {
    throw new SagameshError(ERRORS.DEFINITIONS_INVALID, `${problems.length} problem(s)`, problems);
  }
  const definitions: SagaDefinition[] = [];
  for (const r of results) if (r.definition) definitions.push(r.definition);
  return definitions.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Compiles one file that a load worker has already read, parsed and checked: from its data, without
 * parsing the YAML again, with the load's expressions precompiled (`known`).
 */
export function compileCheckedFile(
  file: CheckedFile,
  opts: LoadOptions,
  known: KnownExpressions,
): FileResult {
  const out = new ProblemCollector(file.file);
  const ctx = { file: file.file, version: versionOf(file.text), source: file.text, known };
  return { out, ...compileSaga(file.data, { ...ctx, maxDeadlineMs: opts.maxDeadlineMs }, out) };
}

/** Checks one file's text on its own (no cross-file checks): for tests and `sagamesh validate`. */
export function loadDefinitionText(
  file: string,
  text: string,
  opts: LoadOptions = {},
): { definition?: SagaDefinition; problems: DefinitionProblem[] } {
  const bytes = Buffer.byteLength(text);
  const { out, definition } =
    bytes > DEFINITION_LIMITS.fileBytes
      ? tooLarge({ file, tooLarge: fileTooLarge(bytes) })
      : analyseFile(file, text, opts, DEFINITION_LIMITS.expressions);
  return definition && out.size === 0 ? { definition, problems: [] } : { problems: [...out.problems] };
}

/** Reads one file (not past DEFINITION_LIMITS.fileBytes) and checks it on its own. */
export async function loadDefinitionFile(
  file: string,
  opts: LoadOptions = {},
): Promise<{ definition?: SagaDefinition; problems: DefinitionProblem[] }> {
  const read = await readBounded(file, DEFINITION_LIMITS.fileBytes);
  if ('bytes' in read)
    return { problems: [...tooLarge({ file, tooLarge: fileTooLarge(read.bytes) }).out.problems] };
  return loadDefinitionText(file, read.text, opts);
}

export interface FileResult extends SagaCompileResult {
  readonly out: ProblemCollector;
  /** The file as read and parsed, when it could be. */
  readonly checked?: CheckedFile;
  /** Distinct expressions in the file, when it could be parsed. */
  readonly expressions?: number;
}

/** A file's text and its parsed YAML: plain data, so a worker can hand it over. */
export interface CheckedFile {
  readonly file: string;
  readonly text: string;
  readonly data: unknown;
}

/**
 * Parses and compiles one file. A file with more distinct expressions than `expressionsLeft` is
 * refused before any of them is compiled.
 */
function analyseFile(file: string, text: string, opts: LoadOptions, expressionsLeft: number): FileResult {
  // Before the parser recurses into it: a deep enough file overflows it (yaml-nesting.ts).
  const tooDeep = yamlNestingProblem(text);
  if (tooDeep) {
    const out = new ProblemCollector(file);
    out.addAt(ERRORS.DEF_YAML_SYNTAX, '', 0, tooDeep);
    return { out };
  }
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const [doc, extra] = docs;
  const out = new ProblemCollector(file, doc, lines);
  if (!doc) {
    out.addAt(ERRORS.DEF_YAML_SYNTAX, '', 0, 'the file holds no YAML document');
    return { out };
  }
  for (const d of docs) for (const e of d.errors) out.addAt(ERRORS.DEF_YAML_SYNTAX, '', e.pos[0], e.message);
  if (extra) {
    out.addAt(
      ERRORS.DEF_YAML_SYNTAX,
      '',
      extra.range[0],
      'a saga file holds one YAML document; found a second',
    );
  }
  if (out.size > 0) return { out };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    out.addAt(ERRORS.DEF_YAML_SYNTAX, '', 0, err instanceof Error ? err.message : String(err));
    return { out };
  }
  const expressions = new Set(expressionSources([data])).size;
  if (expressions > expressionsLeft) {
    const limit = DEFINITION_LIMITS.expressions;
    const message =
      expressionsLeft === limit
        ? `the file holds ${expressions} distinct expressions; a saga file may hold at most ${limit}`
        : `the file holds ${expressions} distinct expressions, past the ${limit} the saga files of a directory may hold together`;
    out.addAt(ERRORS.DEF_TOO_LARGE, '', 0, message);
    return { out, expressions };
  }
  return {
    out,
    expressions,
    checked: { file, text, data },
    ...compileSaga(
      data,
      { file, version: versionOf(text), source: text, maxDeadlineMs: opts.maxDeadlineMs },
      out,
    ),
  };
}

function versionOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

function tooLarge(f: { file: string; tooLarge: string }): FileResult {
  const out = new ProblemCollector(f.file);
  out.addAt(ERRORS.DEF_TOO_LARGE, '', 0, f.tooLarge);
  return { out };
}

/** Saga names and matches must be unique across files; the later file (by name) gets the problem. */
function checkAcrossFiles(results: readonly FileResult[]): void {
  const names = new Map<string, string>();
  const matches = new Map<string, string>();
  for (const { identity, out } of results) {
    if (!identity) continue;
    const sameName = names.get(identity.name);
    if (sameName !== undefined) {
      out.add(
        ERRORS.DEF_DUPLICATE,
        ['metadata', 'name'],
        `saga name "${identity.name}" is also used in ${sameName}`,
      );
    } else names.set(identity.name, out.file);
    const sameMatch = matches.get(identity.match);
    if (sameMatch !== undefined) {
      out.add(ERRORS.DEF_DUPLICATE, ['spec', 'match'], `${identity.match} is also matched by ${sameMatch}`);
    } else matches.set(identity.match, out.file);
  }
}

const SAGA_FILE = /\.ya?ml$/i;

type SagaFile = { file: string; text: string } | { file: string; tooLarge: string };

/**
 * The saga files of `dir`, each read only if it and all before it fit DEFINITION_LIMITS: a file
 * past them is named, not read, so a huge file costs a stat, not a parse.
 */
async function readSagaFiles(dir: string): Promise<SagaFile[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw unreadable(dir, err);
  }
  const files: SagaFile[] = [];
  let total = 0;
  // Dot entries cover `..data` and `..2024_01_01_...` in ConfigMap mounts; sorted for stable messages.
  for (const name of names.filter((n) => !n.startsWith('.') && SAGA_FILE.test(n)).sort()) {
    const file = join(dir, name);
    let read: { text: string } | { bytes: number } | undefined;
    try {
      if (!(await fs.stat(file)).isFile()) continue; // stat follows the ConfigMap's symlinks
      read = await readBounded(file, DEFINITION_LIMITS.fileBytes);
    } catch (err) {
      throw unreadable(file, err);
    }
    if ('bytes' in read) {
      files.push({
        file,
        tooLarge: `the file holds ${read.bytes} bytes; a saga file may hold ${LIMIT_TEXT.file}`,
      });
      continue;
    }
    total += Buffer.byteLength(read.text);
    if (total > DEFINITION_LIMITS.directoryBytes) {
      const tooLarge = `the saga files up to this one hold ${total} bytes; a sagas directory may hold ${LIMIT_TEXT.directory}`;
      files.push({ file, tooLarge });
    } else files.push({ file, text: read.text });
  }
  return files;
}

const fileTooLarge = (bytes: number): string =>
  `the file holds ${bytes} bytes; a saga file may hold ${LIMIT_TEXT.file}`;

const LIMIT_TEXT = {
  file: `${DEFINITION_LIMITS.fileBytes} bytes (${DEFINITION_LIMITS.fileBytes / 1024} KiB)`,
  directory: `${DEFINITION_LIMITS.directoryBytes} bytes (${DEFINITION_LIMITS.directoryBytes / 1024} KiB)`,
};

/**
 * A file's text, or its size when that is past `limit`. At most `limit + 1` bytes are read, even
 * if the file grows between the stat and the read.
 */
export async function readBounded(
  file: string,
  limit: number,
): Promise<{ text: string } | { bytes: number }> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size > limit) return { bytes: size };
    const buffer = Buffer.alloc(limit + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > limit) return { bytes: Math.max(size, length) };
    return { text: buffer.toString('utf8', 0, length) };
  } finally {
    await handle.close();
  }
}

function unreadable(what: string, err: unknown): SagameshError {
  const reason = err instanceof Error ? err.message : String(err);
  return new SagameshError(ERRORS.SAGAS_DIR_UNREADABLE, `${what}: ${reason}`, [], { cause: err });
}
