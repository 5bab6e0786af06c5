import type { Cell, Sample, SweepPoint } from '../cases';
import type { MachineInfo } from '../machine';
import type { MemoryResult } from '../memory';
import type { NestedResults } from '../nested';
import type { ProfileSummary } from '../profile';
import type { Figure } from '../stats';
import { figure } from '../stats';

/** Everything a run measured; written to <run dir>/results.json and bench/results/latest.json. */
export interface Results {
  readonly quick: boolean;
  readonly runs: number;
  readonly durations: { readonly latencyS: number; readonly saturationS: number; readonly sweepS: number };
  readonly machine: MachineInfo;
  readonly systems: readonly { id: string; label: string; available: boolean; unavailable?: string }[];
  readonly cells: readonly Cell[];
  readonly samples: readonly Sample[];
  readonly sweep: readonly SweepPoint[];
  readonly memory?: MemoryResult;
  readonly profile?: ProfileSummary;
  /** Issue 17's nested cells (bench/nested.ts); a run of `--only nested` replaces just these. */
  readonly nested?: NestedResults;
}

export type Metric = 'p50Ms' | 'p90Ms' | 'p99Ms' | 'maxMs' | 'throughput' | 'unexpected';

/** The median and spread of one metric of one system in one cell, over the runs. */
export function stat(results: Results, cell: string, system: string, metric: Metric): Figure | undefined {
  const values = results.samples
    .filter((s) => s.cell === cell && s.system === system)
    .map((s) => s.result[metric]);
  return values.length > 0 ? figure(values) : undefined;
}
