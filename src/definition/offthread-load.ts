import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ERRORS, SagameshError } from '../errors';
import type { ErrorSpec } from '../errors';
import type { SagaDefinition } from './definition';
import { precompileExpression } from './expression';
import type { PrecompiledExpression } from './expression';
import { expressionSources } from './interpolation';
import type { LoadAnswer, LoadRequest } from './load-worker';
import { compileCheckedFile, definitionsOf } from './loader';
import type { CheckedFile, FileResult, LoadOptions } from './loader';

/**
 * loadDefinitions, without holding up the requests sagamesh serves meanwhile. A worker thread
 * reads and checks the directory (load-worker.ts); a set with problems is rejected there and never
 * touches this thread. A checked set is then built here — it holds closures that cannot cross
 * threads — from the worker's parsed data: its expressions compiled in slices of SLICE_MS with the
 * event loop free in between, then one file at a time.
 *
 * Same contract as loadDefinitions: SagameshError(DEFINITIONS_INVALID) listing every problem, or
 * SAGAS_DIR_UNREADABLE; DEF_TOO_LARGE when checking needed more than WORKER_HEAP_MB.
 */
export async function loadDefinitionsOffThread(
  dir: string,
  opts: LoadOptions = {},
): Promise<SagaDefinition[]> {
  const answer = await checkInWorker({ dir, maxDeadlineMs: opts.maxDeadlineMs });
  if (answer.kind === 'rejected') {
    const n = answer.problems.length;
    throw new SagameshError(ERRORS.DEFINITIONS_INVALID, `${n} problem(s)`, answer.problems);
  }
  if (answer.kind === 'failed') throw rebuild(answer.code, answer.message);
  const known = await precompile(answer.files);
  const results: FileResult[] = [];
  for (const file of answer.files) {
    results.push(compileCheckedFile(file, opts, known));
    await nextTurn();
  }
  return definitionsOf(results);
}

/** Longest stretch of expression compiling between two turns of the event loop. */
const SLICE_MS = 10;

/**
 * Memory the worker's heap may grow to: a backstop, as DEFINITION_LIMITS bound a load (a directory
 * at the limits took the whole process from 70 to 187 MB RSS at its peak, measured). Past it the
 * worker ends and the load is refused.
 */
const WORKER_HEAP_MB = 768;

const WORKER_SCRIPT = path.join(__dirname, 'load-worker.js');

function checkInWorker(request: LoadRequest): Promise<LoadAnswer> {
  // Only the build output has the compiled worker; under ts-jest there is none, and saying so beats
  // falling back to blocking this thread without anyone noticing.
  if (!fs.existsSync(WORKER_SCRIPT)) {
    return Promise.reject(
      new SagameshError(ERRORS.INTERNAL, `no load worker at ${WORKER_SCRIPT}; run the build`),
    );
  }
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SCRIPT, {
      workerData: request,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    });
    let answered = false;
    worker.once('message', (answer: LoadAnswer) => {
      answered = true;
      resolve(answer);
      void worker.terminate();
    });
    worker.once('error', (err: Error & { code?: string }) => {
      answered = true;
      reject(
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new SagameshError(
              ERRORS.DEF_TOO_LARGE,
              `checking the saga definitions needed more than ${WORKER_HEAP_MB} MB`,
            )
          : new SagameshError(ERRORS.INTERNAL, `the load worker failed: ${err.message}`, [], { cause: err }),
      );
    });
    worker.once('exit', (code) => {
      if (!answered) reject(new SagameshError(ERRORS.INTERNAL, `the load worker exited with ${code}`));
    });
  });
}

/** Every distinct expression of the checked files, compiled a slice at a time. */
async function precompile(files: readonly CheckedFile[]): Promise<Map<string, PrecompiledExpression>> {
  const known = new Map<string, PrecompiledExpression>();
  let sliceStart = performance.now();
  for (const source of expressionSources(files.map((f) => f.data))) {
    if (known.has(source)) continue;
    known.set(source, precompileExpression(source));
    if (performance.now() - sliceStart > SLICE_MS) {
      await nextTurn();
      sliceStart = performance.now();
    }
  }
  return known;
}

/** Lets timers and I/O run before the next piece of work. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function rebuild(code: string, message: string): SagameshError {
  const spec: ErrorSpec = Object.values(ERRORS).find((s) => s.code === code) ?? ERRORS.INTERNAL;
  const prefix = `${spec.message}: `;
  return new SagameshError(spec, message.startsWith(prefix) ? message.slice(prefix.length) : message);
}
