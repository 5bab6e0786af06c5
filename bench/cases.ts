import type { Lab } from './lab';
import type { Attack, AttackResult, LoadMode } from './load/vegeta';
import { attack } from './load/vegeta';
import { cpuPerRequest, cpuSnapshot } from './cpu';
import type { Options } from './options';
import type { SagaSpec, System } from './systems/system';
import type { Shape, TopologyName } from './topology';
import { TOPOLOGIES } from './topology';

/**
 * The cases of issue #6. A cell is one load against a set of systems; every cell is measured
 * `runs` times, interleaved (run 1 of every cell and system, then run 2, …), so a slow drift of the
 * machine spreads over all systems instead of landing on one.
 */
export type CaseGroup = 'latency' | 'saturation' | 'failure' | 'sweep' | 'passthrough' | 'memory' | 'nested';
export const CASE_GROUPS: readonly CaseGroup[] = [
  'latency',
  'saturation',
  'failure',
  'sweep',
  'passthrough',
  'memory',
  'nested',
];

export interface Cell {
  readonly id: string;
  readonly group: CaseGroup;
  readonly title: string;
  readonly systems: readonly string[];
  readonly spec?: SagaSpec;
  readonly mode: LoadMode;
  readonly durationS: number;
}

export interface Sample {
  readonly cell: string;
  readonly system: string;
  readonly run: number;
  readonly mode: LoadMode;
  readonly result: AttackResult;
}

/** Closed-loop concurrency for saturation: enough outstanding sagas to keep every system busy. */
export const SATURATION_WORKERS = 64;
export const QBOX_RATE = 10;
export const PASSTHROUGH_RATE = 100;
export const LATENCIES_MS = [0, 20] as const;

const FLAT = [
  'direct',
  'sagamesh-memory',
  'sagamesh-sqlite',
  'sagamesh-sqlite-normal',
  'sagamesh-postgres',
  'sagamesh-etcd',
  'dtm-boltdb',
  'dtm-redis',
];
export const SWEEP_SYSTEMS = FLAT;

export function spec(
  topology: TopologyName,
  latencyMs: number,
  shape: Shape = 'flat',
  failEvery?: number,
): SagaSpec {
  return { topology: TOPOLOGIES[topology], shape, latencyMs, ...(failEvery ? { failEvery } : {}) };
}

export function buildCells(o: Options): Cell[] {
  const cells: Cell[] = [];
  for (const topology of ['1to4', '1to9'] as const) {
    for (const latencyMs of LATENCIES_MS) {
      const s = spec(topology, latencyMs);
      const where = `${topology}, participants ${latencyMs === 0 ? 'answering at once' : `at ${latencyMs} ms`}`;
      cells.push({
        id: `latency/${topology}/${latencyMs}ms`,
        group: 'latency',
        title: `${where}, ${QBOX_RATE} sagas/s`,
        systems: [...FLAT, 'serial'],
        spec: s,
        mode: { kind: 'open', rate: QBOX_RATE },
        durationS: o.latencyDurationS,
      });
      cells.push({
        id: `saturation/${topology}/${latencyMs}ms`,
        group: 'saturation',
        title: `${where}, saturation (closed loop, ${SATURATION_WORKERS} concurrent)`,
        systems: [...FLAT, 'serial'],
        spec: s,
        mode: { kind: 'closed', workers: SATURATION_WORKERS },
        durationS: o.saturationDurationS,
      });
    }
  }
  const failing = spec('1to4', 0, 'flat', 10);
  cells.push({
    id: 'failure/1to4/0ms/rate',
    group: 'failure',
    title: `1to4, 10% fail at the last step, ${QBOX_RATE} sagas/s`,
    systems: FLAT,
    spec: failing,
    mode: { kind: 'open', rate: QBOX_RATE },
    durationS: o.latencyDurationS,
  });
  cells.push({
    id: 'failure/1to4/0ms/saturation',
    group: 'failure',
    title: `1to4, 10% fail at the last step, saturation`,
    systems: FLAT,
    spec: failing,
    mode: { kind: 'closed', workers: SATURATION_WORKERS },
    durationS: o.saturationDurationS,
  });
  cells.push({
    id: 'passthrough/rate',
    group: 'passthrough',
    title: `GET on a route that matches no saga, ${PASSTHROUGH_RATE} req/s`,
    systems: PASSTHROUGH_SYSTEMS,
    mode: { kind: 'open', rate: PASSTHROUGH_RATE },
    durationS: o.latencyDurationS,
  });
  cells.push({
    id: 'passthrough/saturation',
    group: 'passthrough',
    title: 'GET on a route that matches no saga, saturation',
    systems: PASSTHROUGH_SYSTEMS,
    mode: { kind: 'closed', workers: SATURATION_WORKERS },
    durationS: o.saturationDurationS,
  });
  return cells.filter((c) => o.only.includes(c.group) && c.systems.some((s) => o.systems(s)));
}

const PASSTHROUGH_SYSTEMS = ['envoy-extproc', 'envoy-extproc-min', 'envoy-extproc-optout', 'envoy-plain'];

/**
 * The pass-through "systems": the ingress with the ext_proc filter on a route that matches no saga
 * (one exchange with sagamesh, answered CONTINUE), the same exchange with the smallest ext_proc
 * server there is (bench/extproc-min, Go: what the exchange itself costs), the filtered ingress on a
 * route that opts out of the filter (`ExtProcPerRoute { disabled: true }`, envoy/envoy.yaml's
 * `/static/`), and Envoy without it.
 */
export function passthroughSystems(lab: Lab): System[] {
  const get = (id: string, label: string, url: string): System => ({
    id,
    label,
    available: true,
    targets: () => () => ({ method: 'GET', url }),
  });
  return [
    get(
      'envoy-extproc',
      'Envoy with the ext_proc filter (sagamesh answers CONTINUE)',
      lab.passthrough.withFilter,
    ),
    ...(lab.passthrough.minimalServer
      ? [
          get(
            'envoy-extproc-min',
            'Envoy with the filter, answered by the smallest ext_proc server (bench/extproc-min, Go)',
            lab.passthrough.minimalServer,
          ),
        ]
      : []),
    get(
      'envoy-extproc-optout',
      'Envoy with the filter, on a route that opts out of it (ExtProcPerRoute disabled)',
      lab.passthrough.optedOut,
    ),
    get('envoy-plain', 'Envoy without the filter', lab.passthrough.withoutFilter),
  ];
}

export function expectedStatuses(systemId: string, failing: boolean): number[] {
  if (systemId.startsWith('envoy-')) return [200];
  const ok = systemId.startsWith('dtm-') ? 200 : 201;
  return failing ? [ok, 409] : [ok];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function measure(
  system: System,
  cellId: string,
  s: SagaSpec | undefined,
  mode: LoadMode,
  durationS: number,
  dir: string,
  tag: string,
): Promise<AttackResult> {
  const a: Attack = {
    name: `${cellId.replace(/\//g, '_')}__${system.id}__${tag}`,
    targets: system.targets(s ?? spec('1to4', 0)),
    mode,
    durationS,
    expected: expectedStatuses(system.id, s?.failEvery !== undefined),
  };
  const before = cpuSnapshot();
  const result = await attack(a, dir);
  const cpuMsPerRequest = cpuPerRequest(before, cpuSnapshot(), result.requests);
  await sleep(500); // let connections close and timers settle before the next system
  return { ...result, cpuMsPerRequest };
}

export function describe(r: AttackResult): string {
  const bad =
    r.unexpected > 0
      ? ` UNEXPECTED ${r.unexpected} ${JSON.stringify(r.statusCodes)} ${r.errors.join('; ')}`
      : '';
  return `p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ${r.throughput.toFixed(0)}/s  n=${r.requests}${bad}`;
}

export async function runCells(
  cells: readonly Cell[],
  systems: ReadonlyMap<string, System>,
  o: Options,
  dir: string,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let run = 1; run <= o.runs; run++) {
    for (const cell of cells) {
      for (const id of cell.systems) {
        const system = systems.get(id);
        if (!system?.available || !o.systems(id)) continue;
        const result = await measure(system, cell.id, cell.spec, cell.mode, cell.durationS, dir, `run${run}`);
        process.stdout.write(`  [${run}/${o.runs}] ${cell.id} ${id}: ${describe(result)}\n`);
        samples.push({ cell: cell.id, system: id, run, mode: cell.mode, result });
      }
    }
  }
  return samples;
}

/** Brings every system's code paths to a steady state (JIT, connection pools) before measuring. */
export async function warmUp(systems: readonly System[], o: Options, dir: string): Promise<void> {
  for (const system of systems) {
    if (!system.available || !o.systems(system.id) || system.id.startsWith('envoy-')) continue;
    for (const topology of ['1to4', '1to9'] as const) {
      const s = spec(topology, 0, system.id === 'serial' ? 'serial' : 'flat');
      await measure(
        system,
        `warmup/${topology}`,
        s,
        { kind: 'closed', workers: 8 },
        o.warmupS,
        dir,
        'warmup',
      );
    }
  }
}

export interface SweepPoint {
  readonly system: string;
  readonly rate: number;
  readonly result: AttackResult;
}

/**
 * Latency against offered load (the chart): open loop at rising rates, 1to4 with participants
 * answering at once. A system stops climbing once it falls behind (answers < 90% of the offered
 * rate, or p50 above 1 s): past its knee, open-loop latency is only the queue growing.
 */
export async function runSweep(
  systems: ReadonlyMap<string, System>,
  o: Options,
  dir: string,
): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  for (const id of SWEEP_SYSTEMS) {
    const system = systems.get(id);
    if (!system?.available || !o.systems(id)) continue;
    for (const rate of o.sweepRates) {
      const result = await measure(
        system,
        `sweep/${rate}`,
        spec('1to4', 0),
        { kind: 'open', rate },
        o.sweepDurationS,
        dir,
        'sweep',
      );
      process.stdout.write(`  sweep ${id} @${rate}/s: ${describe(result)}\n`);
      points.push({ system: id, rate, result });
      if (
        result.throughput < 0.9 * rate ||
        result.p50Ms > 1000 ||
        result.unexpected > 0.01 * result.requests
      ) {
        await sleep(3000);
        break;
      }
    }
  }
  return points;
}
