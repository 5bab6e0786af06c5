import { LATENCIES_MS } from '../cases';
import { fmtRatio, ratio } from '../stats';
import { nestedVerdicts } from './nested';
import type { Results } from './results';
import { stat } from './results';

/**
 * The targets, each judged from medians measured in this run. A target that compares
 * against a system that did not run (e.g. a store not available yet) says so instead of a verdict.
 */
export interface Verdict {
  readonly target: string;
  readonly measured: string;
  readonly ratio: string;
  readonly met: 'met' | 'MISSED' | 'not measured' | 'reference';
}

const TOPOLOGIES = ['1to4', '1to9'] as const;
const VARIANTS = [
  ['sagamesh-memory', 'in-memory'],
  ['sagamesh-sqlite', 'SQLite'],
  ['sagamesh-postgres', 'PostgreSQL'],
] as const;

function label(topology: string, latencyMs: number): string {
  return `${topology} @ ${latencyMs} ms`;
}

/** The worst ratio a/b over the cells, with the cell it came from. */
function worst(
  results: Results,
  cells: readonly { cell: string; where: string }[],
  a: string,
  b: string,
  metric: 'p50Ms' | 'p99Ms' | 'throughput',
  lowerIsWorse: boolean,
): { r: number; where: string; detail: string } | undefined {
  let out: { r: number; where: string; detail: string } | undefined;
  for (const { cell, where } of cells) {
    const x = stat(results, cell, a, metric)?.median;
    const y = stat(results, cell, b, metric)?.median;
    const r = ratio(x, y);
    if (!Number.isFinite(r)) continue;
    const isWorse = out === undefined || (lowerIsWorse ? r < out.r : r > out.r);
    if (isWorse) {
      const unit = metric === 'throughput' ? '/s' : ' ms';
      const d = metric === 'throughput' ? 0 : 2;
      out = { r, where, detail: `${x?.toFixed(d)}${unit} vs ${y?.toFixed(d)}${unit}` };
    }
  }
  return out;
}

export function verdicts(results: Results): Verdict[] {
  const out: Verdict[] = [];
  const latencyCells = TOPOLOGIES.flatMap((t) =>
    LATENCIES_MS.map((l) => ({ cell: `latency/${t}/${l}ms`, where: label(t, l) })),
  );
  const saturationCells = [
    ...TOPOLOGIES.flatMap((t) =>
      LATENCIES_MS.map((l) => ({ cell: `saturation/${t}/${l}ms`, where: label(t, l) })),
    ),
    { cell: 'failure/1to4/0ms/saturation', where: '1to4 @ 0 ms, 10% failing' },
  ];
  const judge = (r: number, limit: number, lowerIsBetter: boolean): Verdict['met'] =>
    !Number.isFinite(r) ? 'not measured' : (lowerIsBetter ? r <= limit : r >= limit) ? 'met' : 'MISSED';

  for (const [metric, limit, name] of [
    ['p50Ms', 1.3, 'p50'],
    ['p99Ms', 2, 'p99'],
  ] as const) {
    for (const [id, store] of VARIANTS) {
      const w = worst(results, latencyCells, id, 'direct', metric, false);
      out.push({
        target: `sagamesh (${store}) ${name} ≤ ${limit}× direct at 10 sagas/s (worst cell)`,
        measured: w ? `${w.detail} (${w.where})` : 'not measured',
        ratio: w ? fmtRatio(w.r) : '—',
        met: judge(w?.r ?? NaN, limit, true),
      });
    }
  }
  for (const [a, b, what] of [
    ['sagamesh-sqlite', 'dtm-boltdb', 'SQLite vs DTM BoltDB'],
    ['sagamesh-postgres', 'dtm-redis', 'PostgreSQL vs DTM Redis'],
    ['sagamesh-memory', 'dtm-redis', 'in-memory vs DTM Redis (no durable store: for reference)'],
  ] as const) {
    const w = worst(results, saturationCells, a, b, 'throughput', true);
    out.push({
      target: `throughput ≥ 2× DTM, ${what} (worst cell)`,
      measured: w ? `${w.detail} (${w.where})` : 'not measured',
      ratio: w ? fmtRatio(w.r) : '—',
      met: judge(w?.r ?? NaN, 2, false),
    });
  }
  for (const [id, store] of VARIANTS) {
    const sm = stat(results, 'latency/1to9/20ms', id, 'p50Ms')?.median;
    const floor = stat(results, 'latency/1to9/20ms', 'direct', 'p50Ms')?.median;
    const r = ratio(sm, floor);
    out.push({
      target: `1to9 @ 20 ms (${store}): p50 ≤ 1.2× the critical path (direct: slowest branch + one hop)`,
      measured: Number.isFinite(r)
        ? `${sm?.toFixed(2)} ms vs ${floor?.toFixed(2)} ms (serial sum would be 180 ms)`
        : 'not measured',
      ratio: fmtRatio(r),
      met: judge(r, 1.2, true),
    });
  }
  const lat = worst(results, latencyCells, 'sagamesh-sqlite', 'sagamesh-memory', 'p50Ms', false);
  out.push({
    target: 'SQLite log ≤ 20% slower than in-memory: p50 at 10 sagas/s (worst cell)',
    measured: lat ? `${lat.detail} (${lat.where})` : 'not measured',
    ratio: lat ? fmtRatio(lat.r) : '—',
    met: judge(lat?.r ?? NaN, 1.2, true),
  });
  const thr = worst(results, saturationCells, 'sagamesh-sqlite', 'sagamesh-memory', 'throughput', true);
  out.push({
    target: 'SQLite log ≤ 20% slower than in-memory: saturation throughput (worst cell)',
    measured: thr ? `${thr.detail} (${thr.where})` : 'not measured',
    ratio: thr ? fmtRatio(thr.r) : '—',
    met: judge(thr?.r ?? NaN, 1 / 1.2, false),
  });
  const m = results.memory;
  out.push({
    target: `${m?.sagas ?? 10_000} sagas in flight in ≤ 512 MB RSS`,
    measured: m
      ? `${(m.rssAtPeakBytes / 2 ** 20).toFixed(0)} MB RSS with ${m.peakStreams} sagas open; ${(m.hwmBytes / 2 ** 20).toFixed(0)} MB peak (VmHWM) while they ran` +
        (m.heapLimitMb ? ` (--max-old-space-size=${m.heapLimitMb})` : '') +
        (m.died ? '; the process DIED during the case' : '')
      : 'not measured',
    ratio: m ? `${((m.hwmBytes / 2 ** 20 / 512) * 100).toFixed(0)}% of 512 MB (peak)` : '—',
    // A process that died holding them (out of heap) did not hold them.
    met: m ? (!m.died && m.hwmBytes <= 512 * 2 ** 20 ? 'met' : 'MISSED') : 'not measured',
  });
  const pw = stat(results, 'passthrough/rate', 'envoy-extproc', 'p50Ms')?.median;
  const pp = stat(results, 'passthrough/rate', 'envoy-plain', 'p50Ms')?.median;
  const pr = ratio(pw, pp);
  out.push({
    target: 'pass-through (no saga) p50 overhead of the filter ≤ 10%',
    measured: Number.isFinite(pr) ? `${pw?.toFixed(3)} ms vs ${pp?.toFixed(3)} ms` : 'not measured',
    ratio: Number.isFinite(pr) ? `+${((pr - 1) * 100).toFixed(0)}%` : '—',
    met: judge(pr, 1.1, true),
  });
  const pm = stat(results, 'passthrough/rate', 'envoy-extproc-min', 'p50Ms')?.median;
  const pmr = ratio(pm, pp);
  if (Number.isFinite(pmr)) {
    out.push({
      target: 'for reference: the same exchange with the smallest ext_proc server (bench/extproc-min, Go)',
      measured: `${pm?.toFixed(3)} ms vs ${pp?.toFixed(3)} ms`,
      ratio: `+${((pmr - 1) * 100).toFixed(0)}%`,
      met: 'reference',
    });
  }
  const po = stat(results, 'passthrough/rate', 'envoy-extproc-optout', 'p50Ms')?.median;
  const por = ratio(po, pp);
  out.push({
    target: 'the same, on a route that opts out of the filter (ExtProcPerRoute disabled) ≤ 10%',
    measured: Number.isFinite(por) ? `${po?.toFixed(3)} ms vs ${pp?.toFixed(3)} ms` : 'not measured',
    ratio: Number.isFinite(por) ? `${por >= 1 ? '+' : ''}${((por - 1) * 100).toFixed(0)}%` : '—',
    met: judge(por, 1.1, true),
  });
  out.push(...nestedVerdicts(results.nested));
  return out;
}
