import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ERRORS, SagameshError, isSagameshError } from '../errors';
import type { SagaDefinition } from '../definition/definition';
import type { DefinitionProblem } from '../definition/loader';
import {
  formatProblem,
  isDefinitionProblem,
  loadDefinitionFile,
  loadDefinitions,
} from '../definition/loader';
import type { CliIo } from './io';
import { reportError } from './report';

/**
 * `sagamesh validate <files|dirs…>`: the server's own loader, so what passes here loads there.
 * A directory is checked as the server loads it (cross-file duplicates included); a file on its
 * own. The report goes to stdout — one line per valid saga and one per problem
 * (`file:line:column field CODE message`) — so it can be kept or grepped; a failure ends with the
 * coded line on stderr (DEFINITIONS_INVALID with the count, or the path that cannot be read).
 * Exit 0 when everything is valid, 1 otherwise.
 */
export async function validate(
  paths: readonly string[],
  opts: { maxDeadlineMs: number },
  io: CliIo,
): Promise<number> {
  let problems = 0;
  let failed = false;
  for (const given of paths) {
    const target = path.resolve(io.cwd, given);
    let result: { definitions: SagaDefinition[]; problems: readonly DefinitionProblem[] };
    try {
      result = (await fs.stat(target)).isDirectory()
        ? await checkDirectory(target, opts.maxDeadlineMs)
        : await checkFile(target, opts.maxDeadlineMs);
    } catch (err) {
      failed = true;
      reportError(io, isSagameshError(err) ? err : unreadable(given, err));
      continue;
    }
    for (const d of result.definitions) {
      const steps = `${d.steps.length} step${d.steps.length === 1 ? '' : 's'}`;
      io.stdout(
        `ok ${relative(io, d.file)} ${d.name}@${d.version} (${d.match.method} ${d.match.path}, ${steps})\n`,
      );
    }
    for (const p of result.problems) io.stdout(`${formatProblem({ ...p, file: relative(io, p.file) })}\n`);
    problems += result.problems.length;
  }
  if (problems > 0) {
    const counted = `${problems} problem${problems === 1 ? '' : 's'} (listed on stdout)`;
    reportError(io, new SagameshError(ERRORS.DEFINITIONS_INVALID, counted));
  }
  return problems > 0 || failed ? 1 : 0;
}

async function checkDirectory(
  dir: string,
  maxDeadlineMs: number,
): Promise<{ definitions: SagaDefinition[]; problems: readonly DefinitionProblem[] }> {
  try {
    return { definitions: await loadDefinitions(dir, { maxDeadlineMs }), problems: [] };
  } catch (err) {
    if (isSagameshError(err) && err.code === ERRORS.DEFINITIONS_INVALID.code) {
      return { definitions: [], problems: err.details.filter(isDefinitionProblem) };
    }
    throw err;
  }
}

async function checkFile(
  file: string,
  maxDeadlineMs: number,
): Promise<{ definitions: SagaDefinition[]; problems: readonly DefinitionProblem[] }> {
  const { definition, problems } = await loadDefinitionFile(file, { maxDeadlineMs });
  return { definitions: definition ? [definition] : [], problems };
}

function unreadable(given: string, err: unknown): SagameshError {
  const reason = err instanceof Error ? err.message : String(err);
  return new SagameshError(ERRORS.SAGAS_DIR_UNREADABLE, `${given}: ${reason}`);
}

function relative(io: CliIo, file: string): string {
  const rel = path.relative(io.cwd, file);
  return rel.startsWith('..') ? file : rel;
}
