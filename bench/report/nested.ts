import type { NestedResults, NestedSample } from '../nested';
import { NESTED_TOPOLOGIES, QBOX_NESTED_P50_MS } from '../nested';
import type { Figure } from '../stats';
import { figure, fmt, fmtRatio, ratio } from '../stats';
import { table } from './markdown';
import type { Verdict } from './targets';

/** Issue 17's nested cells: the section of BENCHMARKS.md and the speed target's verdicts. */

/** A nested sagas's p50 at 10 sagas/s within this many times the direct nested fan-out's. */
export const NESTED_P50_TARGET = 1.3;

function nestedStat(
  n: NestedResults,
  topology: string,
  load: NestedSample['load'],
  system: NestedSample['system'],
  metric: 'p50Ms' | 'p99Ms' | 'throughput' | 'unexpected',
): Figure | undefined {
  const values = n.samples
    .filter((s) => s.topology === topology && s.load === load && s.system === system)
    .map((s) => s.result[metric]);
  return values.length > 0 ? figure(values) : undefined;
}

export function nestedVerdicts(n: NestedResults | undefined): Verdict[] {
  if (!n) return [];
  return NESTED_TOPOLOGIES.map((t) => {
    const s = nestedStat(n, t.name, 'rate', 'nested-sagamesh', 'p50Ms')?.median;
    const d = nestedStat(n, t.name, 'rate', 'nested-direct', 'p50Ms')?.median;
    const r = ratio(s, d);
    return {
      target: `nested ${t.name} p50 ≤ ${NESTED_P50_TARGET}× the direct nested fan-out @ ${n.rate}/s, ${n.latencyMs} ms participants`,
      measured: `${s?.toFixed(1) ?? '—'} ms vs ${d?.toFixed(1) ?? '—'} ms`,
      ratio: fmtRatio(r),
      met: !Number.isFinite(r) ? 'not measured' : r <= NESTED_P50_TARGET ? 'met' : 'MISSED',
    };
  });
}

export function nestedSection(n: NestedResults | undefined): string {
  if (!n) return '';
  const rows: string[][] = [];
  for (const t of NESTED_TOPOLOGIES) {
    for (const system of ['nested-direct', 'nested-sagamesh'] as const) {
      const get = (load: NestedSample['load'], metric: 'p50Ms' | 'p99Ms' | 'throughput' | 'unexpected') =>
        nestedStat(n, t.name, load, system, metric);
      const unexpected = (get('rate', 'unexpected')?.max ?? 0) + (get('saturation', 'unexpected')?.max ?? 0);
      rows.push([
        t.name,
        system === 'nested-direct' ? 'direct, by hand' : 'sagamesh',
        fmt(get('rate', 'p50Ms'), 'ms'),
        fmt(get('rate', 'p99Ms'), 'ms'),
        fmt(get('saturation', 'throughput'), '/s'),
        fmt(get('saturation', 'p50Ms'), 'ms'),
        String(unexpected),
      ]);
    }
    const q = QBOX_NESTED_P50_MS[t.name];
    rows.push([t.name, 'Qbox (its report, GKE; not measured here)', `${q.qbox} ms`, '—', '—', '—', '—']);
    rows.push([t.name, 'RabbitMQ baseline (Qbox report, GKE)', `${q.rabbitmq} ms`, '—', '—', '—', '—']);
  }
  const ratios = NESTED_TOPOLOGIES.map(
    (t) =>
      `${t.name} ${fmtRatio(ratio(nestedStat(n, t.name, 'rate', 'nested-sagamesh', 'p50Ms')?.median, nestedStat(n, t.name, 'rate', 'nested-direct', 'p50Ms')?.median))}`,
  ).join(', ');
  return [
    '### Nested sagas (Qbox topologies)',
    `Measured ${n.date.slice(0, 16).replace('T', ' ')}Z${n.machine ? ` on ${n.machine}` : ''} by \`npm run bench -- --only nested\` (bench/nested.ts): ` +
      `\`1toNtoM\` is a root saga whose N steps are middle services, each running a saga over M leaves of its own ` +
      `(N × M leaf calls per saga). Every middle service has its own Envoy and its own sagamesh (in-memory log); ` +
      `the baseline does the same nested fan-out by hand (bench/direct/main.ts as root and as middles, through the ` +
      `same Envoys without the filter). Participants answer after ${n.latencyMs} ms. ${n.rate} sagas/s open loop ` +
      `for ${n.durations.rateS} s, then saturation with ${n.workers} clients for ${n.durations.saturationS} s; ` +
      `median of ${n.runs} run${n.runs > 1 ? 's' : ''}. DTM is not in these cells: see bench/notes.md.`,
    table(
      [
        'topology',
        'system',
        `p50 @ ${n.rate}/s`,
        `p99 @ ${n.rate}/s`,
        'saturation',
        'p50 at saturation',
        'unexpected answers',
      ],
      rows,
    ),
    `p50 at ${n.rate}/s, sagamesh ÷ direct: ${ratios} (target ≤ ${NESTED_P50_TARGET}×).`,
  ].join('\n\n');
}
