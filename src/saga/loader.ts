import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { ERRORS, SagameshError } from '../errors';
import { compileSaga } from './compile-saga';
import type { SagaCompileResult } from './compile-saga';
import type { SagaDefinition } from './definition';
import { ProblemCollector } from './problems';
import type { DefinitionProblem } from './problems';

export { formatProblem, isDefinitionProblem } from './problems';
export type { DefinitionProblem } from './problems';

export interface LoadOptions {
  /** No saga may have a longer deadline; default 60000. */
  readonly maxDeadlineMs?: number;
}

/**
 * Reads every `*.yaml` / `*.yml` in `dir` (not sub-directories; dotfiles and the `..data` entries
 * of a Kubernetes ConfigMap mount are skipped, the symlinks to the files are followed), checks all
 * of them and returns the definitions sorted by name. It never half-loads: if anything in any file
 * is wrong it throws SagameshError(DEFINITIONS_INVALID) whose details list every problem of every
 * file. A directory or file that cannot be read is SagameshError(SAGAS_DIR_UNREADABLE).
 */
export async function loadDefinitions(dir: string, opts: LoadOptions = {}): Promise<SagaDefinition[]> {
  const files = await readSagaFiles(dir);
  const results = files.map(({ file, text }) => analyseFile(file, text, opts));
  checkAcrossFiles(results);
  const problems = results.flatMap((r) => r.out.problems);
  if (problems.length > 0) {
    throw new SagameshError(ERRORS.DEFINITIONS_INVALID, `${problems.length} problem(s)`, problems);
  }
  const definitions: SagaDefinition[] = [];
  for (const r of results) if (r.definition) definitions.push(r.definition);
  return definitions.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Checks one file's text on its own (no cross-file checks): for tests and `sagamesh validate`. */
export function loadDefinitionText(
  file: string,
  text: string,
  opts: LoadOptions = {},
): { definition?: SagaDefinition; problems: DefinitionProblem[] } {
  const { out, definition } = analyseFile(file, text, opts);
  return definition && out.size === 0 ? { definition, problems: [] } : { problems: [...out.problems] };
}

interface FileResult extends SagaCompileResult {
  readonly out: ProblemCollector;
}

function analyseFile(file: string, text: string, opts: LoadOptions): FileResult {
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
  const version = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return {
    out,
    ...compileSaga(data, { file, version, source: text, maxDeadlineMs: opts.maxDeadlineMs }, out),
  };
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

async function readSagaFiles(dir: string): Promise<{ file: string; text: string }[]> {
  const unreadable = (what: string, err: unknown): SagameshError => {
    const reason = err instanceof Error ? err.message : String(err);
    return new SagameshError(ERRORS.SAGAS_DIR_UNREADABLE, `${what}: ${reason}`, [], { cause: err });
  };
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw unreadable(dir, err);
  }
  const files: { file: string; text: string }[] = [];
  // Dot entries cover `..data` and `..2024_01_01_...` in ConfigMap mounts; sorted for stable messages.
  for (const name of names.filter((n) => !n.startsWith('.') && SAGA_FILE.test(n)).sort()) {
    const file = join(dir, name);
    try {
      if (!(await fs.stat(file)).isFile()) continue; // stat follows the ConfigMap's symlinks
      files.push({ file, text: await fs.readFile(file, 'utf8') });
    } catch (err) {
      throw unreadable(file, err);
    }
  }
  return files;
}
