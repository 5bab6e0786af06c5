import type { Clock } from '../clock';
import type { Logger } from '../logger';
import type { SagaRunner } from '../engine/runner';
import type { SagaLog } from '../runtime/journal';

/**
 * The saga log's background work, on timers that never keep the process alive:
 * - leases (PostgreSQL): renew this instance's sagas every third of the TTL, abandon the ones
 *   another instance took over, and claim unfinished sagas whose owner's lease expired;
 * - retention: delete finished sagas and old Idempotency-Keys.
 * Failures are logged and retried on the next tick; they never stop a running saga.
 */
export interface MaintenanceOptions {
  readonly log: SagaLog;
  readonly runner: SagaRunner;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly leases: boolean;
  readonly leaseTtlMs: number;
  readonly retentionMs: number;
  readonly idempotencyRetentionMs: number;
}

export class Maintenance {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly busy = new Set<string>();

  constructor(private readonly o: MaintenanceOptions) {}

  /** Resumes what this instance must resume now (every unfinished saga at boot, or expired leases). */
  async recover(reason: 'restart' | 'takeover'): Promise<number> {
    const ids = await this.o.log.claimUnfinished();
    let resumed = 0;
    for (const id of ids) {
      try {
        if (await this.o.runner.resume(id, reason)) resumed += 1;
      } catch (err) {
        this.o.logger.error({ err, saga_id: id }, 'could not resume saga');
      }
    }
    if (ids.length > 0)
      this.o.logger.warn({ claimed: ids.length, resumed, reason }, 'resumed unfinished sagas');
    return resumed;
  }

  start(): void {
    if (this.o.leases) {
      this.every('renew', Math.max(250, Math.floor(this.o.leaseTtlMs / 3)), async () => {
        const lost = await this.o.log.renewLeases(this.o.runner.runningIds());
        for (const id of lost) this.o.runner.abandon(id, 'lease expired before it was renewed');
      });
      this.every('claim', Math.max(250, Math.floor(this.o.leaseTtlMs / 2)), () =>
        this.recover('takeover').then(() => undefined),
      );
    }
    const pruneEvery = Math.min(10 * 60_000, Math.max(1000, Math.floor(this.o.retentionMs / 10)));
    this.every('prune', pruneEvery, () => this.prune().then(() => undefined));
  }

  async prune(): Promise<{ sagas: number; keys: number }> {
    const now = this.o.clock.now();
    const pruned = await this.o.log.prune({
      sagasFinishedBefore: now - this.o.retentionMs,
      keysCreatedBefore: now - this.o.idempotencyRetentionMs,
    });
    if (pruned.sagas + pruned.keys > 0) this.o.logger.info(pruned, 'pruned the saga log');
    return pruned;
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

  private every(name: string, ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      if (this.busy.has(name)) return;
      this.busy.add(name);
      task()
        .catch((err: unknown) => this.o.logger.error({ err, task: name }, 'saga log maintenance failed'))
        .finally(() => this.busy.delete(name));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }
}
