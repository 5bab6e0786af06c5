import { parentPort, workerData } from 'node:worker_threads';
import { toSagameshError } from '../errors';
import { checkDirectory } from './loader';
import type { CheckedFile, DefinitionProblem } from './loader';

/**
 * Worker thread entry (offthread-load.ts starts it): reads and checks a sagas directory — the YAML
 * parse, the schema, every expression, the step graph — away from the thread that serves requests,
 * and posts back either every problem or the checked files as plain data.
 */

export interface LoadRequest {
  readonly dir: string;
  readonly maxDeadlineMs: number | undefined;
}

export type LoadAnswer =
  | { readonly kind: 'checked'; readonly files: readonly CheckedFile[] }
  | { readonly kind: 'rejected'; readonly problems: readonly DefinitionProblem[] }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string };

async function check(request: LoadRequest): Promise<LoadAnswer> {
  try {
    const results = await checkDirectory(request.dir, { maxDeadlineMs: request.maxDeadlineMs });
    const problems = results.flatMap((r) => r.out.problems);
    if (problems.length > 0) return { kind: 'rejected', problems };
    return { kind: 'checked', files: results.flatMap((r) => (r.checked ? [r.checked] : [])) };
  } catch (err) {
    const e = toSagameshError(err);
    return { kind: 'failed', code: e.code, message: e.message };
  }
}

function isLoadRequest(value: unknown): value is LoadRequest {
  if (typeof value !== 'object' || value === null) return false;
  const v: Partial<Record<keyof LoadRequest, unknown>> = value;
  return typeof v.dir === 'string' && (v.maxDeadlineMs === undefined || typeof v.maxDeadlineMs === 'number');
}

if (parentPort && isLoadRequest(workerData)) {
  const port = parentPort;
  void check(workerData).then((answer) => port.postMessage(answer));
}
