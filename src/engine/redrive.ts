import type { Clock } from '../clock';
import { ERRORS, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import { backoffDelayMs } from '../runtime/backoff';

/**
 * Re-drives sagas whose record could not be written. Such a saga is stopped at once (its log no
 * longer says what it did, so it must not act on), and resumed from the log after a backoff —
 * exactly as recovery after a crash resumes it — until it runs again, is found finished, or
 * another instance owns it (LEASE_LOST). A store that stays down is tried again every 30 s at
 * most, with jitter, so the sagas of an outage do not all return at once. Nothing waits for a
 * restart; with PostgreSQL another instance may also claim the saga once its lease lapses.
 */

/** 1 s, doubling, capped at 30 s; equal jitter (backoff.ts). */
const REDRIVE_BACKOFF = { attempts: Infinity, backoffMs: 1000, maxBackoffMs: 30_000 };

export interface RedriveDeps {
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  /** Resumes the saga from its journal; resolves whether or not there was anything to resume. */
  readonly resume: (sagaId: string) => Promise<unknown>;
}

export class Redrives {
  private readonly timers = new Map<string, unknown>();

  constructor(private readonly deps: RedriveDeps) {}

  /** Schedules the saga's resumption, unless one is scheduled already. */
  schedule(sagaId: string, attempt = 1): void {
    if (this.timers.has(sagaId)) return;
    const delayMs = backoffDelayMs(REDRIVE_BACKOFF, attempt, this.deps.random());
    const timer = this.deps.clock.setTimeout(() => {
      this.timers.delete(sagaId);
      this.deps.resume(sagaId).catch((err: unknown) => {
        const e = toSagameshError(err);
        if (e.code === ERRORS.LEASE_LOST.code) return;
        this.deps.logger.warn(
          { saga_id: sagaId, err: e, attempt },
          'saga could not be resumed yet; trying again',
        );
        this.schedule(sagaId, attempt + 1);
      });
    }, delayMs);
    this.timers.set(sagaId, timer);
  }

  /** Sagas waiting for their next attempt. */
  get size(): number {
    return this.timers.size;
  }

  /** Cancels every pending attempt (shutdown): what is left is recovered at the next start. */
  cancelAll(): void {
    for (const timer of this.timers.values()) this.deps.clock.clearTimeout(timer);
    this.timers.clear();
  }
}
