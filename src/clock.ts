/**
 * Time, injected. Structurally compatible with XState's `Clock`, so the same object drives the
 * sagas' timers (the runner's SagaDriver; `createActor(machine, { clock })` in tests) and the
 * timestamps in the saga log. Tests pass xstate's `SimulatedClock`-backed clock instead.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: unknown[]) => void, timeoutMs: number): unknown;
  clearTimeout(id: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};
