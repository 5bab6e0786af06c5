import type { CaseGroup } from './cases';
import { CASE_GROUPS } from './cases';

/**
 * Command line of `npm run bench -- [options]`:
 *   --quick            short runs, one repetition (for development; the report says so)
 *   --only a,b         case groups: latency, saturation, failure, sweep, passthrough, memory, nested
 *                      (`--only nested` alone replaces only the nested section of the last report)
 *   --systems a,b      system ids (direct, sagamesh-memory, sagamesh-sqlite, sagamesh-sqlite-normal, sagamesh-postgres, sagamesh-etcd,
 *                      dtm-boltdb, dtm-redis, serial, envoy-extproc, envoy-extproc-min, envoy-extproc-optout,
 *                      envoy-plain)
 *   --runs N           repetitions per figure (default 3)
 *   --profile          also run sagamesh (in-memory log) under `node --cpu-prof` at saturation and
 *                      summarise the profile (top functions by self time) into the run directory
 *   --memory-heap-mb N run the memory case's sagamesh with --max-old-space-size=N, as a container
 *                      with a memory limit would (the default is Node's own heap sizing)
 *   --no-report        do not rewrite BENCHMARKS.md (numbers only on the terminal)
 *   --report-only DIR  rewrite BENCHMARKS.md from DIR/results.json of an earlier run
 */
export interface Options {
  readonly quick: boolean;
  readonly only: readonly CaseGroup[];
  readonly systems: (id: string) => boolean;
  readonly systemList?: readonly string[];
  readonly runs: number;
  readonly latencyDurationS: number;
  readonly saturationDurationS: number;
  readonly warmupS: number;
  readonly sweepRates: readonly number[];
  readonly sweepDurationS: number;
  /** Sagas in flight for the memory case. */
  readonly memorySagas: number;
  /** V8 old-space limit for the memory case's sagamesh (`--max-old-space-size`), if given. */
  readonly memoryHeapMb?: number;
  readonly profile: boolean;
  readonly report: boolean;
  readonly reportOnly?: string;
}

export function parseOptions(argv: readonly string[]): Options {
  const has = (flag: string): boolean => argv.includes(flag);
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = has('--quick');
  const onlyText = value('--only');
  const only = onlyText ? (onlyText.split(',') as CaseGroup[]) : [...CASE_GROUPS];
  for (const g of only)
    if (!CASE_GROUPS.includes(g)) throw new Error(`--only: unknown case "${g}" (${CASE_GROUPS.join(', ')})`);
  const systemList = value('--systems')?.split(',');
  const runs = Number(value('--runs') ?? (quick ? 1 : 3));
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const reportOnly = value('--report-only');
  const heapText = value('--memory-heap-mb');
  const memoryHeapMb = heapText === undefined ? undefined : Number(heapText);
  if (memoryHeapMb !== undefined && !(Number.isInteger(memoryHeapMb) && memoryHeapMb > 0))
    throw new Error('--memory-heap-mb must be a positive integer');
  return {
    quick,
    only,
    systems: (id) => !systemList || systemList.includes(id),
    ...(systemList ? { systemList } : {}),
    runs,
    latencyDurationS: quick ? 3 : 10,
    saturationDurationS: quick ? 3 : 6,
    warmupS: quick ? 1 : 2,
    sweepRates: quick ? [10, 100, 400] : [10, 50, 100, 200, 400, 800, 1600],
    sweepDurationS: quick ? 2 : 5,
    memorySagas: quick ? 2000 : 10_000,
    ...(memoryHeapMb !== undefined ? { memoryHeapMb } : {}),
    profile: has('--profile'),
    report: !has('--no-report'),
    ...(reportOnly ? { reportOnly } : {}),
  };
}
