import type { RetryPolicy } from '../definition/definition';

/**
 * Delay before the attempt that follows attempt number `attempt` (1-based): exponential growth
 * from `backoffMs`, capped at `maxBackoffMs`, with "equal jitter" — half the delay is fixed, half
 * scaled by `jitter` in [0, 1) — so retries of many sagas spread out but never collapse to zero.
 */
export function backoffDelayMs(retry: RetryPolicy, attempt: number, jitter: number): number {
  const exponent = Math.max(0, attempt - 1);
  const capped = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** Math.min(exponent, 30));
  const half = capped / 2;
  return Math.round(half + jitter * half);
}

/**
 * The jitter of one retry, in [0, 1): a hash (FNV-1a) of what names it — saga id, step, call kind,
 * attempt. Saga ids are random, so retries of many sagas spread out as with Math.random(); but the
 * machine stays a function of its events (the same journal gives the same delays), and no state
 * update draws a random number.
 */
export function jitterOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 2 ** 32;
}
