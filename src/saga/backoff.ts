import type { RetryPolicy } from './definition';

/**
 * Delay before the attempt that follows attempt number `attempt` (1-based): exponential growth
 * from `backoffMs`, capped at `maxBackoffMs`, with "equal jitter" — half the delay is fixed, half
 * random — so retries of many sagas spread out but never collapse to zero.
 */
export function backoffDelayMs(retry: RetryPolicy, attempt: number, random: () => number): number {
  const exponent = Math.max(0, attempt - 1);
  const capped = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** Math.min(exponent, 30));
  const half = capped / 2;
  return Math.round(half + random() * half);
}
