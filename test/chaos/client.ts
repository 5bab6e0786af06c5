import type { Attempt, ClientRecord, RequestPlan, Verdict } from './model';
import type { Rng } from './prng';

/**
 * The chaos clients. A client with an Idempotency-Key sends its request until it gets a final
 * answer, or gives up after `maxAttempts`: it retries on network errors, on the retryable coded
 * answers (503 from Envoy while sagamesh is down, OVERLOADED, STORE_UNAVAILABLE…), on `202` (still
 * running) and on an interim `compensating` answer, waiting `Retry-After` or a short random pause.
 * Some send once more after their final answer (which must be the same). A client without a key
 * sends once: it cannot retry without risking a second saga.
 *
 * Final answers, by what they say (not by status alone — a definition may fail with 503):
 *   2xx other than 202                        → applied (aggregate success, or a pivot's upstream)
 *   a saga answer, status `compensated`       → undone      (any status code)
 *   a saga answer, status `stuck`             → stuck       (a violation, reported by the checker)
 *   202 whose status is final                 → that outcome (a pivot saga's replay: its
 *                                                upstream's answer is not recorded)
 */
export interface ClientOptions {
  readonly ingressUrl: string;
  readonly maxAttempts: number;
  readonly requestTimeoutMs: number;
}

/** Coded answers that say "nothing ran, try again". */
const RETRYABLE_CODES = new Set([
  'SAGAMESH_ERR_COORDINATOR_UNAVAILABLE',
  'SAGAMESH_ERR_STORE_UNAVAILABLE',
  'SAGAMESH_ERR_OVERLOADED',
  'SAGAMESH_ERR_DRAINING',
  'SAGAMESH_ERR_LEASE_LOST',
  'SAGAMESH_ERR_INTERNAL',
]);

export type Classified =
  | { readonly final: true; readonly verdict: Exclude<Verdict, 'unknown'> }
  | { readonly final: false; readonly retry: true; readonly afterMs?: number }
  | { readonly final: false; readonly retry: false; readonly unexpected: string };

interface AnswerBody {
  readonly status?: unknown;
  readonly sagaId?: unknown;
  readonly error?: { readonly code?: unknown };
}

function parse(text: string | undefined): AnswerBody | undefined {
  if (!text) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

/** What one answer means to a client (see the table above). */
export function classify(attempt: Attempt): Classified {
  const { status } = attempt;
  if (status === undefined) return { final: false, retry: true };
  const body = parse(attempt.body);
  const sagaStatus = typeof body?.status === 'string' ? body.status : undefined;
  if (sagaStatus === 'compensated') return { final: true, verdict: 'undone' };
  if (sagaStatus === 'stuck') return { final: true, verdict: 'stuck' };
  if (status === 202) {
    if (sagaStatus === 'succeeded') return { final: true, verdict: 'applied' };
    return { final: false, retry: true, afterMs: 1000 };
  }
  if (status >= 200 && status < 300) return { final: true, verdict: 'applied' };
  // An answer that could not be rendered for a saga that did succeed is coded, and says so.
  if (sagaStatus === 'succeeded') return { final: true, verdict: 'applied' };
  if (sagaStatus === 'compensating' || sagaStatus === 'running')
    return { final: false, retry: true, afterMs: 1000 };
  const code = typeof body?.error?.code === 'string' ? body.error.code : undefined;
  if (code !== undefined && RETRYABLE_CODES.has(code)) return { final: false, retry: true, afterMs: 1000 };
  if (code === undefined && status >= 500) return { final: false, retry: true };
  return { final: false, retry: false, unexpected: `${status} ${code ?? attempt.body?.slice(0, 200) ?? ''}` };
}

export async function send(options: ClientOptions, plan: RequestPlan, afterFinal = false): Promise<Attempt> {
  const startedAt = Date.now();
  try {
    const res = await fetch(`${options.ingressUrl}${plan.path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(plan.key !== undefined ? { 'idempotency-key': plan.key } : {}),
      },
      body: JSON.stringify(plan.body),
      signal: AbortSignal.timeout(options.requestTimeoutMs),
    });
    const body = await res.text();
    const sagaId = res.headers.get('x-sagamesh-saga-id') ?? parse(body)?.sagaId;
    return {
      startedAt,
      endedAt: Date.now(),
      status: res.status,
      body,
      ...(typeof sagaId === 'string' ? { sagaId } : {}),
      ...(res.headers.get('idempotent-replayed') === 'true' ? { replayed: true } : {}),
      ...(afterFinal ? { afterFinal } : {}),
    };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return {
      startedAt,
      endedAt: Date.now(),
      error: `${err instanceof Error ? err.message : String(err)}${cause}`,
      ...(afterFinal ? { afterFinal } : {}),
    };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one client to its final answer (or its last try); never rejects. */
export async function runClient(options: ClientOptions, plan: RequestPlan, rng: Rng): Promise<ClientRecord> {
  const attempts: Attempt[] = [];
  let verdict: Verdict = 'unknown';
  let finalAttempt: number | undefined;
  let unexpected: string | undefined;
  for (let i = 0; i < options.maxAttempts; i++) {
    const attempt = await send(options, plan);
    attempts.push(attempt);
    const c = classify(attempt);
    if (c.final) {
      verdict = c.verdict;
      finalAttempt = attempts.length - 1;
      break;
    }
    if (!c.retry) {
      unexpected = c.unexpected;
      break;
    }
    if (plan.key === undefined) break;
    await sleep((c.afterMs ?? 0) + rng.int(100, 500));
  }
  if (finalAttempt !== undefined && plan.resendAfterFinal) {
    await sleep(rng.int(0, 2000));
    attempts.push(await send(options, plan, true));
  }
  return {
    ref: plan.ref,
    definition: plan.definition,
    ...(plan.key !== undefined ? { key: plan.key } : {}),
    attempts,
    verdict,
    ...(finalAttempt !== undefined ? { finalAttempt } : {}),
    ...(unexpected !== undefined ? { unexpected } : {}),
  };
}
