import { ERRORS } from '../errors';
import type { CallResponse } from './http-caller';
import type { CallDefinition } from '../definition/definition';
import type { CallKind, CallOutput } from '../runtime/saga-state';

/**
 * How a participant's answer counts (ARCHITECTURE.md, "Saga semantics"): a listed success status
 * → success; for a compensation a 404 also means "nothing to undo"; 408, 429 and 5xx → retry;
 * any other 4xx → a definitive refusal that retrying will not change.
 *
 * An action's success whose body claims JSON and is not (`unreadable`), when the saga reads that
 * step's response (`readByTheSaga`: its undo needs the booking id, say), is in doubt instead: the
 * participant did the work, but the saga cannot know what it did. It counts as applied and
 * retryable, keeps no response, and is asked again under the same idempotency key — retried
 * within the action's budget, replayed within the compensation's once the saga compensates —
 * until it answers readably; past the budget, as any retryable failure, the step fails or its
 * undo is stuck. Nobody reading the body, the answer is a success and the text is kept.
 */
export function classifyResponse(
  kind: CallKind,
  call: CallDefinition,
  answer: CallResponse,
  step: string,
  readByTheSaga = false,
): CallOutput {
  const { unreadable, ...response } = answer;
  const { status } = response;
  if (call.success.includes(status) || (kind === 'compensation' && status === 404)) {
    if (unreadable !== undefined && kind === 'action' && readByTheSaga) {
      return {
        outcome: 'retryable',
        applied: 'yes',
        error: {
          code: ERRORS.STEP_BAD_RESPONSE.code,
          message: `${step}: participant answered ${status}, but ${unreadable}`,
        },
      };
    }
    return { outcome: 'success', applied: 'yes', response };
  }
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return {
      outcome: 'rejected',
      applied: 'no',
      response,
      error: { code: ERRORS.STEP_REJECTED.code, message: `${step}: participant answered ${status}` },
    };
  }
  return {
    outcome: 'retryable',
    // A 5xx may come after the participant did part of the work: treat it as in doubt.
    applied: status >= 500 ? 'maybe' : 'no',
    response,
    error: { code: ERRORS.STEP_UNAVAILABLE.code, message: `${step}: participant answered ${status}` },
  };
}

/**
 * Errors that prove the request never reached the participant. UNPROCESSED_STREAM is the h2c
 * caller's (src/participants/h2c-caller.ts): refused stream, above a GOAWAY's last stream id, or
 * never opened.
 */
const NEVER_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UNPROCESSED_STREAM',
]);

export function classifyNetworkError(errno: string | undefined, message: string, step: string): CallOutput {
  return {
    outcome: 'retryable',
    applied: errno !== undefined && NEVER_SENT.has(errno) ? 'no' : 'maybe',
    error: { code: ERRORS.STEP_UNAVAILABLE.code, message: `${step}: ${message}` },
  };
}
