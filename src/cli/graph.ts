import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ERRORS, SagameshError } from '../errors';
import { sagaChart, toDot, toMermaid } from '../runtime/graph';
import { loadDefinitionText } from '../definition/loader';
import type { CliIo } from './io';

export const GRAPH_FORMATS = ['mermaid', 'dot', 'json'] as const;
export type GraphFormat = (typeof GRAPH_FORMATS)[number];

/**
 * `sagamesh graph <file>`: the saga's state chart, read off the machine the server builds from the
 * file. Throws DEFINITIONS_INVALID (with every problem) when the file is not a valid saga.
 */
export async function graph(
  file: string,
  opts: { format: GraphFormat; maxDeadlineMs: number },
  io: CliIo,
): Promise<number> {
  const target = path.resolve(io.cwd, file);
  let text: string;
  try {
    text = await fs.readFile(target, 'utf8');
  } catch (err) {
    throw new SagameshError(
      ERRORS.SAGAS_DIR_UNREADABLE,
      `${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const { definition, problems } = loadDefinitionText(file, text, { maxDeadlineMs: opts.maxDeadlineMs });
  if (!definition) {
    throw new SagameshError(ERRORS.DEFINITIONS_INVALID, `${problems.length} problem(s)`, problems);
  }
  const chart = sagaChart(definition);
  const out =
    opts.format === 'dot'
      ? toDot(chart)
      : opts.format === 'json'
        ? `${JSON.stringify(chart, null, 2)}\n`
        : toMermaid(chart);
  io.stdout(out);
  return 0;
}
