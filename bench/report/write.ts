import { nestedSection } from './nested';
import fs from 'node:fs';
import { QBOX_RATE, SATURATION_WORKERS, PASSTHROUGH_RATE } from '../cases';
import type { Cell } from '../cases';
import { PROFILE_NOTES } from '../layout';
import { figure, fmt, fmtRatio, ratio } from '../stats';
import { method } from './method';
import { mb, table } from './markdown';
import type { Results } from './results';
import { stat } from './results';
import { verdicts } from './targets';

/** Renders BENCHMARKS.md from a run's results. */
export function renderReport(results: Results, chartPath: string | undefined, flamePath?: string): string {
  const m = results.machine;
  const parts: string[] = [];
  parts.push('# Benchmarks');
  parts.push(
    `Measured by \`npm run bench\` (bench/run.ts) on ${m.date}${results.quick ? ' — **quick run** (short, one repetition: indicative only)' : ''}. ` +
      `Every figure is the median of ${results.runs} run${results.runs > 1 ? 's' : ''}` +
      (results.runs > 1 ? ', with the range over the runs in brackets' : '') +
      '. All systems ran side by side in the same run, against the same participants, on loopback.',
  );
  parts.push('## Targets');
  parts.push(
    table(
      ['target', 'measured', 'ratio', 'verdict'],
      verdicts(results).map((v) => [
        v.target,
        v.measured,
        v.ratio,
        v.met === 'MISSED' ? '**MISSED**' : v.met,
      ]),
    ),
  );
  parts.push('## Machine and versions');
  parts.push(
    table(
      ['', ''],
      [
        ['CPU', `${m.cpus} × ${m.cpuModel}`],
        ['memory', m.memory],
        ['kernel', m.kernel],
        ...Object.entries(m.versions).map(([k, v]) => [k, v]),
      ],
    ),
  );
  const unavailable = results.systems.filter((s) => !s.available);
  if (unavailable.length > 0) {
    parts.push(
      'Not measured in this run:\n\n' +
        unavailable
          .map((s) => `- **${s.label}** (\`${s.id}\`): ${s.unavailable ?? 'not available'}`)
          .join('\n'),
    );
  }
  parts.push(method(results));
  parts.push('## Results');
  parts.push(latencySection(results));
  parts.push(saturationSection(results));
  parts.push(cpuSection(results));
  parts.push(failureSection(results));
  parts.push(sweepSection(results, chartPath));
  parts.push(passthroughSection(results));
  parts.push(memorySection(results));
  const nested = nestedSection(results.nested);
  if (nested) parts.push(nested);
  if (fs.existsSync(PROFILE_NOTES)) parts.push(fs.readFileSync(PROFILE_NOTES, 'utf8').trim());
  if (results.profile) {
    parts.push('### CPU profile (sagamesh, in-memory log, at saturation)');
    if (flamePath) parts.push(`![flame graph of sagamesh at saturation](${flamePath})`);
    parts.push(
      `${results.profile.title}. Self time of the hottest functions (${results.profile.totalMs.toFixed(0)} ms sampled):\n\n` +
        table(
          ['self %', 'function', 'where'],
          results.profile.top.map((f) => [`${f.selfPct.toFixed(1)}%`, `\`${f.name}\``, f.where]),
        ) +
        '\n\nBy area (self time):\n\n' +
        table(
          ['area', 'self %'],
          results.profile.byArea.map((a) => [a.area, `${a.selfPct.toFixed(1)}%`]),
        ),
    );
  }
  return `${parts.join('\n\n')}\n`;
}

function labelOf(results: Results, id: string): string {
  return results.systems.find((s) => s.id === id)?.label ?? id;
}

function cellsOf(results: Results, group: Cell['group']): Cell[] {
  return results.cells.filter((c) => c.group === group);
}

function latencySection(results: Results): string {
  const cells = cellsOf(results, 'latency');
  if (cells.length === 0) return '';
  const out = [
    `### Latency at ${QBOX_RATE} sagas/s (open loop, Qbox's rate)`,
    `Client-observed latency of a whole saga; "× direct" compares medians with the direct client in the same cell. ` +
      `${results.durations.latencyS} s per run (${QBOX_RATE * results.durations.latencyS} sagas), so p99 is close to the slowest saga of a run.`,
  ];
  for (const c of cells) {
    const direct50 = stat(results, c.id, 'direct', 'p50Ms')?.median;
    const direct99 = stat(results, c.id, 'direct', 'p99Ms')?.median;
    const rows = c.systems
      .filter((id) => results.systems.some((s) => s.id === id))
      .map((id) => {
        const sys = results.systems.find((s) => s.id === id);
        if (!sys?.available) return [labelOf(results, id), 'not available yet', '', '', '', ''];
        const p50 = stat(results, c.id, id, 'p50Ms');
        const p99 = stat(results, c.id, id, 'p99Ms');
        return [
          labelOf(results, id),
          fmt(p50, 'ms'),
          fmt(p99, 'ms'),
          fmt(stat(results, c.id, id, 'maxMs'), 'ms'),
          fmtRatio(ratio(p50?.median, direct50)),
          fmtRatio(ratio(p99?.median, direct99)),
        ];
      });
    out.push(`#### ${c.title}`);
    out.push(table(['system', 'p50', 'p99', 'max', 'p50 × direct', 'p99 × direct'], rows));
  }
  return out.join('\n\n');
}

function throughputTable(results: Results, c: Cell): string {
  const boltdb = stat(results, c.id, 'dtm-boltdb', 'throughput')?.median;
  const redis = stat(results, c.id, 'dtm-redis', 'throughput')?.median;
  const rows = c.systems
    .filter((id) => results.systems.some((s) => s.id === id))
    .map((id) => {
      const sys = results.systems.find((s) => s.id === id);
      if (!sys?.available) return [labelOf(results, id), 'not available yet', '', '', '', ''];
      const t = stat(results, c.id, id, 'throughput');
      const bad = stat(results, c.id, id, 'unexpected');
      return [
        labelOf(results, id),
        fmt(t, '/s'),
        fmt(stat(results, c.id, id, 'p50Ms'), 'ms'),
        fmt(stat(results, c.id, id, 'p99Ms'), 'ms'),
        `${fmtRatio(ratio(t?.median, boltdb))} / ${fmtRatio(ratio(t?.median, redis))}`,
        bad && bad.max > 0 ? `${bad.max} unexpected answers` : '',
      ];
    });
  return table(['system', 'sagas/s', 'p50', 'p99', '× DTM BoltDB / Redis', 'notes'], rows);
}

function saturationSection(results: Results): string {
  const cells = cellsOf(results, 'saturation');
  if (cells.length === 0) return '';
  const out = [
    `### Saturation throughput (closed loop, ${SATURATION_WORKERS} concurrent clients)`,
    `Sagas completed per second while ${SATURATION_WORKERS} clients each send the next saga as soon as the previous one answered; ${results.durations.saturationS} s per run.`,
  ];
  for (const c of cells)
    out.push(`#### ${c.title.replace(/, saturation.*$/, '')}`, throughputTable(results, c));
  return out.join('\n\n');
}

/** Which probed process is a system's coordinator, and which store it writes to. */
const COORDINATOR: Readonly<Record<string, string>> = {
  direct: 'direct',
  'sagamesh-memory': 'sagamesh-memory',
  'sagamesh-sqlite': 'sagamesh-sqlite',
  'sagamesh-sqlite-normal': 'sagamesh-sqlite-normal',
  'sagamesh-postgres': 'sagamesh-postgres',
  'sagamesh-etcd': 'sagamesh-etcd',
  serial: 'sagamesh-memory',
  'dtm-boltdb': 'dtm-boltdb',
  'dtm-redis': 'dtm-redis',
};
const STORE: Readonly<Record<string, string>> = { 'sagamesh-postgres': 'postgres', 'dtm-redis': 'redis' };

function cpuSection(results: Results): string {
  const cell = cellsOf(results, 'saturation').find((c) => c.id === 'saturation/1to4/0ms');
  if (!cell) return '';
  const perSaga = (id: string, process: string | undefined): number | undefined => {
    if (!process) return undefined;
    const values = results.samples
      .filter((s) => s.cell === cell.id && s.system === id)
      .map((s) => s.result.cpuMsPerRequest?.[process])
      .filter((v): v is number => v !== undefined);
    return values.length > 0 ? figure(values).median : undefined;
  };
  const ms = (v: number | undefined): string => (v === undefined ? '—' : v.toFixed(2));
  const rows = cell.systems
    .filter((id) => results.systems.find((s) => s.id === id)?.available && COORDINATOR[id])
    .map((id) => {
      const parts = [
        perSaga(id, COORDINATOR[id]),
        perSaga(id, 'envoy'),
        perSaga(id, 'participants'),
        perSaga(id, STORE[id]),
      ];
      const total = parts.reduce<number>((sum, v) => sum + (v ?? 0), 0);
      return total > 0 ? [labelOf(results, id), ...parts.map(ms), total.toFixed(2)] : [];
    })
    .filter((row) => row.length > 0);
  if (rows.length === 0) return '';
  return [
    `### Where the CPU goes: ${cell.title.replace(/, saturation.*$/, '')}, at saturation`,
    'CPU milliseconds per saga of each server process during the saturation runs above (utime + stime from /proc, a process with its descendants, median over the runs; the load generator is not counted). The coordinator is the system itself: sagamesh, DTM, or the direct client. On 2 cores, 2000 ms of CPU per second is all there is: the total bounds the throughput of every system.',
    table(['system', 'coordinator', 'Envoy', 'participants', 'store', 'total'], rows),
  ].join('\n\n');
}

function failureSection(results: Results): string {
  const cells = cellsOf(results, 'failure');
  if (cells.length === 0) return '';
  const out = [
    '### Failure mix: 10% of sagas fail at the last step',
    'Every 10th saga has its last participant refuse (409); the other steps, which ran in parallel, are compensated. Compare with the 1to4 @ 0 ms rows above for the cost of compensation.',
  ];
  for (const c of cells) {
    if (c.mode.kind === 'closed') {
      out.push(`#### ${c.title}`, throughputTable(results, c));
      continue;
    }
    const rows = c.systems
      .filter((id) => results.systems.find((s) => s.id === id)?.available)
      .map((id) => [
        labelOf(results, id),
        fmt(stat(results, c.id, id, 'p50Ms'), 'ms'),
        fmt(stat(results, c.id, id, 'p90Ms'), 'ms'),
        fmt(stat(results, c.id, id, 'p99Ms'), 'ms'),
      ]);
    out.push(`#### ${c.title}`, table(['system', 'p50', 'p90', 'p99 (the failing sagas)'], rows));
  }
  return out.join('\n\n');
}

function sweepSection(results: Results, chartPath: string | undefined): string {
  if (results.sweep.length === 0) return '';
  const rates = [...new Set(results.sweep.map((p) => p.rate))].sort((a, b) => a - b);
  const systems = [...new Set(results.sweep.map((p) => p.system))];
  const rows = systems.map((id) => [
    labelOf(results, id),
    ...rates.map((rate) => {
      const p = results.sweep.find((x) => x.system === id && x.rate === rate);
      if (!p) return '';
      const behind = p.result.throughput < 0.9 * rate ? ' ⚠' : '';
      return `${p.result.p50Ms.toFixed(1)} / ${p.result.p99Ms.toFixed(1)}${behind}`;
    }),
  ]);
  return [
    '### Latency against offered load',
    `1to4, participants answering at once, open loop at each rate for ${results.durations.sweepS} s (one run per point). ` +
      'p50 / p99 in ms; ⚠ = the system answered less than 90% of the offered rate (past its knee: the queue grows, and the sweep stops for that system).',
    chartPath ? `![latency against offered load](${chartPath})` : '',
    table(['system', ...rates.map((r) => `${r}/s`)], rows),
  ].join('\n\n');
}

function passthroughSection(results: Results): string {
  const cells = cellsOf(results, 'passthrough');
  if (cells.length === 0) return '';
  const rows = cells.flatMap((c) =>
    c.systems.map((id) => [
      c.mode.kind === 'open' ? `${PASSTHROUGH_RATE} req/s` : `closed loop, ${SATURATION_WORKERS} clients`,
      labelOf(results, id),
      fmt(stat(results, c.id, id, 'p50Ms'), 'ms', 3),
      fmt(stat(results, c.id, id, 'p99Ms'), 'ms', 3),
      fmt(stat(results, c.id, id, 'throughput'), '/s'),
    ]),
  );
  return [
    '### ext_proc overhead on a route that matches no saga',
    'GET /passthrough through the ingress listener with the ext_proc filter (sagamesh answers the request headers with CONTINUE and switches the rest of the stream off), through the same filter answered by bench/extproc-min (Go, the same answer at once), on the route that opts out of the filter, and through the same listener without the filter; the upstream answers 200 at once.',
    table(['load', 'listener', 'p50', 'p99', 'req/s'], rows),
  ].join('\n\n');
}

function memorySection(results: Results): string {
  const m = results.memory;
  if (!m) return '';
  return [
    '### Memory: sagas in flight',
    `${m.sagas} sagas of 1to4 opened in 5 s (open loop) against one sagamesh process (in-memory log) while every participant holds its answer 5 s. ` +
      (m.heapLimitMb
        ? `sagamesh ran with \`--max-old-space-size=${m.heapLimitMb}\`.`
        : "sagamesh ran with Node's default heap sizing.") +
      (m.died ? ' **The process died during the case**; the figures are what it had reached.' : ''),
    table(
      ['', ''],
      [
        ['RSS idle, before', mb(m.idleRssBytes)],
        ['RSS when the most sagas were open', mb(m.rssAtPeakBytes)],
        ['peak RSS (VmHWM) over the case', mb(m.hwmBytes)],
        ['ext_proc streams open at the peak (= sagas in flight)', String(m.peakStreams)],
        ['participant calls in progress at the peak', String(m.peakParticipantCalls)],
        [
          'answers',
          Object.entries(m.answered)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', '),
        ],
      ],
    ),
  ].join('\n\n');
}
