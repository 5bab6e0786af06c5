import fs from 'node:fs';
import { ERRORS, SagameshError, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import type { SagaDefinition } from './definition';
import { formatProblem, isDefinitionProblem } from './loader';

/**
 * Hot reload of the sagas directory, the way Kubernetes updates a ConfigMap mount (a new
 * `..<timestamp>` directory, then an atomic rename of the `..data` symlink to point at it) and the
 * way people edit files (write in place, or write a temp file and rename it). Any event in the
 * directory schedules one reload after `debounceMs` of quiet.
 *
 * A reload loads and checks the whole directory first (the loader never half-loads); only a set
 * with no problem at all is handed to `apply`, which swaps it in. A rejected set is logged with
 * SAGAMESH_ERR_RELOAD_REJECTED and every problem's code, and the last good set stays in force.
 * Sagas already running are untouched either way: they hold the definition object they started
 * with (and the saga log recorded its version).
 */

export type ReloadResult =
  | { readonly result: 'applied'; readonly definitions: readonly SagaDefinition[] }
  | { readonly result: 'unchanged' }
  | { readonly result: 'rejected'; readonly error: SagameshError };

export interface WatcherOptions {
  readonly dir: string;
  /** Loads and validates the directory; rejects with a SagameshError listing every problem. */
  readonly load: () => Promise<SagaDefinition[]>;
  /** The set in force now, to tell a real change from a touched file. */
  readonly current: () => readonly SagaDefinition[];
  /** Puts a validated set in force. May throw (then the reload counts as rejected). */
  readonly apply: (definitions: readonly SagaDefinition[]) => void;
  /** Told about every reload, e.g. for metrics; must not throw. */
  readonly onReload?: (outcome: ReloadResult) => void;
  readonly logger: Logger;
  readonly debounceMs: number;
}

/** Name@version of every definition: two sets with the same fingerprint behave the same. */
const fingerprint = (defs: readonly SagaDefinition[]): string =>
  defs
    .map((d) => `${d.name}@${d.version}`)
    .sort()
    .join(',');

export class DefinitionsWatcher {
  private watcher?: fs.FSWatcher;
  private timer?: NodeJS.Timeout;
  /** The reload running now, if any; events during it schedule one more after it. */
  private running: Promise<ReloadResult> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly options: WatcherOptions) {}

  /** Starts watching. Throws SAGAS_DIR_UNREADABLE when the directory cannot be watched. */
  start(): void {
    try {
      this.watcher = fs.watch(this.options.dir, { persistent: false }, () => this.schedule());
    } catch (err) {
      throw new SagameshError(ERRORS.SAGAS_DIR_UNREADABLE, `cannot watch ${this.options.dir}`, [], {
        cause: err,
      });
    }
    this.watcher.on('error', (err) => {
      // The directory itself went away (or the watch broke): keep the set in force, say so.
      this.options.logger.error(
        { err, code: ERRORS.SAGAS_DIR_UNREADABLE.code, dir: this.options.dir },
        'stopped watching the sagas directory; the definitions in force stay',
      );
    });
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.watcher?.close();
    return this.running?.then(() => undefined) ?? Promise.resolve();
  }

  /** Reloads now (after any reload in progress). Resolves with what happened. */
  async reload(): Promise<ReloadResult> {
    while (this.running) await this.running;
    this.running = this.reloadOnce();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.running) {
        this.again = true;
        return;
      }
      void this.reload().then(() => {
        if (this.again && !this.stopped) {
          this.again = false;
          this.schedule();
        }
      });
    }, this.options.debounceMs);
  }

  private async reloadOnce(): Promise<ReloadResult> {
    const { logger } = this.options;
    let outcome: ReloadResult;
    try {
      const definitions = await this.options.load();
      if (fingerprint(definitions) === fingerprint(this.options.current())) {
        outcome = { result: 'unchanged' };
        logger.debug('sagas directory changed; the definitions did not');
      } else {
        this.options.apply(definitions);
        outcome = { result: 'applied', definitions };
        logger.info(
          { sagas: definitions.map((d) => `${d.name}@${d.version}`) },
          'saga definitions reloaded; new sagas use them, running sagas keep theirs',
        );
      }
    } catch (err) {
      const error = toSagameshError(err);
      outcome = { result: 'rejected', error };
      logger.error(
        {
          code: ERRORS.RELOAD_REJECTED.code,
          cause_code: error.code,
          problems: error.details.map((d) => (isDefinitionProblem(d) ? formatProblem(d) : String(d))),
          message: error.message,
        },
        'saga definitions rejected; the last good set stays in force',
      );
    }
    this.options.onReload?.(outcome);
    return outcome;
  }
}

/** The codes of a rejected reload, one per problem (or the error's own code): for metrics. */
export function problemCodes(error: SagameshError): string[] {
  const codes = error.details.filter(isDefinitionProblem).map((p) => p.code);
  return codes.length > 0 ? codes : [error.code];
}
