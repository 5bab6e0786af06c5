/**
 * Fault injection for the demo services, shared by the participants and the trips app.
 *
 * Faults ride in the JSON request body (field `fault`) rather than in headers or query strings so
 * that a curl user of a saga can trigger them: the saga forwards parts of its own request body
 * (e.g. `request.body.car`) as a participant's booking body.
 */
import { setTimeout as delay } from 'node:timers/promises';

export type Fault =
  | { kind: 'fail'; ms?: number }
  | { kind: 'slow'; ms: number }
  | { kind: 'flaky'; attempts: number }
  | { kind: 'cancel-fail' }
  | { kind: 'cancel-slow'; ms: number }
  | { kind: 'garbled'; answers: number };

/** Upper bound for `slow:<ms>` and `cancel-slow:<ms>`: a typo must not park a request (and its timer) for days. */
export const MAX_SLOW_MS = 10 * 60 * 1000;
/** Upper bound for `flaky:<n>` and `garbled:<n>`; anything larger is a mistake, not a test. */
export const MAX_FLAKY_ATTEMPTS = 1000;

export type FaultParse = { ok: true; fault: Fault | undefined } | { ok: false; message: string };

/**
 * Reads the `fault` field of a parsed JSON body.
 * - body not an object, field absent or null → no fault (null is what a template yields for a
 *   missing value, so it must not break the happy path);
 * - a recognised string → that fault;
 * - anything else (unknown string, wrong type, out-of-range number) → not ok, the caller answers 400.
 */
export function parseFault(body: unknown): FaultParse {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { ok: true, fault: undefined };
  const raw = (body as Record<string, unknown>).fault;
  if (raw === undefined || raw === null) return { ok: true, fault: undefined };
  if (typeof raw !== 'string') return { ok: false, message: 'fault must be a string' };
  if (raw === 'fail') return { ok: true, fault: { kind: 'fail' } };
  if (raw === 'cancel-fail') return { ok: true, fault: { kind: 'cancel-fail' } };
  const m = /^(fail|slow|flaky|cancel-slow|garbled):(\d{1,9})$/.exec(raw);
  if (m) {
    const n = Number(m[2]);
    if (m[1] === 'fail' || m[1] === 'slow' || m[1] === 'cancel-slow') {
      if (n > MAX_SLOW_MS) return { ok: false, message: `${m[1]} delay must be <= ${MAX_SLOW_MS} ms` };
      return { ok: true, fault: { kind: m[1], ms: n } };
    }
    if (n > MAX_FLAKY_ATTEMPTS)
      return { ok: false, message: `${m[1]} count must be <= ${MAX_FLAKY_ATTEMPTS}` };
    if (m[1] === 'garbled') return { ok: true, fault: { kind: 'garbled', answers: n } };
    return { ok: true, fault: { kind: 'flaky', attempts: n } };
  }
  return {
    ok: false,
    message: `unknown fault ${JSON.stringify(raw)}; expected fail, fail:<ms>, slow:<ms>, flaky:<n>, cancel-fail, cancel-slow:<ms> or garbled:<n>`,
  };
}

/**
 * Waits `ms` unless `signal` aborts first. Resolves true when the full delay elapsed, false when
 * aborted (service reset or closed). Never rejects, so callers need no AbortError plumbing.
 */
export async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
