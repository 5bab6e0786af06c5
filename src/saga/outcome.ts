import { ERRORS } from '../errors';
import type { CallDefinition, StepResponse } from './definition';
import type { CallKind, CallOutput } from './saga-state';

/**
 * How a participant's answer counts (ARCHITECTURE.md, "Saga semantics"): a listed success status
 * → success; for a compensation a 404 also means "nothing to undo"; 408, 429 and 5xx → retry;
 * any other 4xx → a definitive refusal that retrying will not change.
 */
export function classifyResponse(
  kind: CallKind,
  call: CallDefinition,
  response: StepResponse,
  step: string,
): CallOutput {
  const { status } = response;
  if (call.success.includes(status) || (kind === 'compensation' && status === 404)) {
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
