import type { Targeter } from '../load/target';
import type { Shape, Topology } from '../topology';

/** What one saga request looks like in a case: the same for every system. */
export interface SagaSpec {
  readonly topology: Topology;
  readonly shape: Shape;
  /** How long every participant takes to answer its action. */
  readonly latencyMs: number;
  /** Every n-th saga fails at its last step (10 → 10%); undefined: none fails. */
  readonly failEvery?: number;
}

export interface System {
  /** Stable id used by --only and in the raw results, e.g. `sagamesh-sqlite`. */
  readonly id: string;
  /** Row label in the tables. */
  readonly label: string;
  readonly available: boolean;
  /** Why a system is not measured, e.g. "not available yet: SAGAMESH_ERR_CONFIG_INVALID …". */
  readonly unavailable?: string;
  /** The process whose memory the memory case reads. */
  readonly pid?: number;
  /** The requests that run one saga per call, as this system is asked to run it. */
  targets(spec: SagaSpec): Targeter;
}

/** For every n-th request, true: the saga that fails at its last step. */
export function failsAt(index: number, failEvery: number | undefined): boolean {
  return failEvery !== undefined && index % failEvery === failEvery - 1;
}
