import { ERRORS, SagameshError } from '../errors';

/**
 * Durations in saga definitions: a whole number followed by `ms`, `s` or `m` (`250ms`, `2s`,
 * `1m`). Nothing fancier on purpose — a deadline should read the same to everyone.
 */

/** The same rule as a JSON Schema pattern; at most 9 digits keeps every value a safe integer. */
export const DURATION_PATTERN = '^[0-9]{1,9}(ms|s|m)$';

/**
 * The longest duration a definition may give a timeout, a backoff or (through
 * SAGAMESH_MAX_DEADLINE_MS, whose ceiling this is) a deadline. Node's timers hold at most 2^31-1 ms
 * (~24.8 days) and fire after 1 ms beyond it; no step call or retry delay should wait an hour.
 */
export const MAX_DURATION_MS = 3_600_000;

const DURATION = new RegExp(DURATION_PATTERN);
const UNIT_MS = { ms: 1, s: 1000, m: 60_000 } as const;

/** Milliseconds, or undefined when `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const unit = m[1] === 's' ? 's' : m[1] === 'm' ? 'm' : 'ms';
  return Number.parseInt(text, 10) * UNIT_MS[unit];
}

/** The shortest exact spelling: 60000 → `1m`, 2000 → `2s`, 1500 → `1500ms`. */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0)
    throw new SagameshError(ERRORS.INTERNAL, `not a duration in milliseconds: ${ms}`);
  if (ms !== 0 && ms % UNIT_MS.m === 0) return `${ms / UNIT_MS.m}m`;
  if (ms !== 0 && ms % UNIT_MS.s === 0) return `${ms / UNIT_MS.s}s`;
  return `${ms}ms`;
}
