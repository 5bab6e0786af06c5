/**
 * Whether this instance should get traffic (GET /readyz): not while the definitions are first
 * loading, not while draining for shutdown, not while the saga log does not answer. Liveness
 * (GET /healthz) is separate: a process that is draining or has lost its store is still alive.
 */

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: {
    readonly definitions: 'loading' | 'loaded';
    readonly draining: boolean;
    readonly store: 'ok' | 'unreachable';
  };
  /** Why not ready, for people; empty when ready. */
  readonly reasons: readonly string[];
}

export interface ReadinessOptions {
  /** The store's ping (`SagaLog.ping`), when it has one. Rejects when the store is unreachable. */
  readonly ping?: () => Promise<void>;
  /** A ping that has not answered by then counts as unreachable. */
  readonly pingTimeoutMs?: number;
  /** The app's own draining flag, when it keeps one; `setDraining()` works either way. */
  readonly isDraining?: () => boolean;
}

export class Readiness {
  private loading = true;
  private draining = false;

  constructor(private readonly options: ReadinessOptions = {}) {}

  /** The first definition set is in force and the servers listen. */
  markLoaded(): void {
    this.loading = false;
  }

  /** Shutdown began: stop being ready so the load balancer takes this instance out. One way. */
  setDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining || (this.options.isDraining?.() ?? false);
  }

  async check(): Promise<ReadinessReport> {
    const store = await this.pingStore();
    const draining = this.isDraining;
    const reasons = [
      ...(this.loading ? ['saga definitions are loading'] : []),
      ...(draining ? ['draining for shutdown'] : []),
      ...(store === 'ok' ? [] : ['the saga log is unreachable']),
    ];
    return {
      ready: reasons.length === 0,
      checks: { definitions: this.loading ? 'loading' : 'loaded', draining, store },
      reasons,
    };
  }

  private async pingStore(): Promise<'ok' | 'unreachable'> {
    const ping = this.options.ping;
    if (!ping) return 'ok';
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'unreachable'>((resolve) => {
      timer = setTimeout(() => resolve('unreachable'), this.options.pingTimeoutMs ?? 1000);
    });
    try {
      return await Promise.race([ping().then(() => 'ok' as const), timeout]);
    } catch {
      return 'unreachable';
    } finally {
      clearTimeout(timer);
    }
  }
}
