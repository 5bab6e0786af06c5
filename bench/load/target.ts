/** One HTTP request for the load generator (vegeta's JSON target format, body not yet encoded). */
export interface Target {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Yields the next request each time it is called (DTM needs a fresh gid per saga). */
export type Targeter = () => Target;

export function repeat(target: Target): Targeter {
  return () => target;
}

/** Cycles through `targets` in order: with 9 good and 1 failing, exactly 10% fail. */
export function cycle(targets: readonly Target[]): Targeter {
  let i = 0;
  return () => {
    const t = targets[i % targets.length];
    i++;
    if (!t) throw new Error('cycle: no targets');
    return t;
  };
}
