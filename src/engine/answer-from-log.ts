import type { SagaLog, StoredAnswer } from '../runtime/journal';
import { rebuild } from '../runtime/recovery';
import type { SagaDefinition } from '../definition/definition';
import type { SagaResult } from './execution';
import { scopeOf, summarize } from './execution';
import type { SagaContext } from '../runtime/saga-state';
import { FINAL_STATES, freshStep } from '../runtime/saga-state';

/**
 * The answer of a saga that finished without one kept for its Idempotency-Keys. A sagamesh from
 * before answers were written with `saga.finished` could die between its two writes; the key then
 * answered 202 until it expired. The answer is derived from the journal, as recovery rebuilds a
 * saga (runtime/recovery.ts), stored, and returned; undefined while the saga has not finished,
 * or when sagamesh does not own its answer (a pivot saga's success).
 */
export interface AnswerFromLogDeps {
  readonly log: SagaLog;
  readonly resolveDefinition: (version: string, name: string) => Promise<SagaDefinition | undefined>;
  readonly answer?: (definition: SagaDefinition, result: SagaResult) => Promise<StoredAnswer | undefined>;
}

export async function answerFromLog(
  deps: AnswerFromLogDeps,
  sagaId: string,
): Promise<StoredAnswer | undefined> {
  const rebuilt = rebuild(await deps.log.history(sagaId));
  const status = FINAL_STATES.find((s) => s === rebuilt?.finished);
  if (!rebuilt || !status || !deps.answer) return undefined;
  const { started, failedStep, error } = rebuilt;
  const definition = await deps.resolveDefinition(started.version, started.definition);
  if (!definition) return undefined;
  const context: SagaContext = {
    sagaId,
    recovered: true,
    request: started.request,
    deadlineMs: Math.min(definition.deadlineMs, started.deadlineMs ?? Infinity),
    steps: { ...Object.fromEntries(definition.steps.map((s) => [s.name, freshStep()])), ...rebuilt.steps },
    ...(failedStep ? { failedStep } : {}),
    ...(error ? { error } : {}),
  };
  const result: SagaResult = {
    sagaId,
    definition: definition.name,
    status,
    ...(failedStep ? { failedStep } : {}),
    ...(error ? { error } : {}),
    steps: summarize(context),
    scope: scopeOf(definition, context),
  };
  const answer = await deps.answer(definition, result);
  if (answer) await deps.log.saveAnswer(sagaId, answer);
  return answer;
}
