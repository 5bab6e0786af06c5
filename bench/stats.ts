/** Median and spread of a figure measured once per run. */
export interface Figure {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function figure(values: readonly number[]): Figure {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? (v[mid] ?? NaN) : ((v[mid - 1] ?? NaN) + (v[mid] ?? NaN)) / 2;
  return { median, min: v[0] ?? NaN, max: v[v.length - 1] ?? NaN, n: v.length };
}

/** "12.3 ms (11.9–13.0)" — the median, then the range over the runs when there was more than one. */
export function fmt(f: Figure | undefined, unit: 'ms' | '/s' | 'MB', digits?: number): string {
  if (!f || f.n === 0) return '—';
  const d = digits ?? (unit === 'ms' ? (f.median < 10 ? 2 : 1) : 0);
  const n = (x: number): string => x.toFixed(d);
  const value = unit === '/s' ? `${n(f.median)}/s` : `${n(f.median)} ${unit}`;
  return f.n > 1 ? `${value} (${n(f.min)}–${n(f.max)})` : value;
}

export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '—';
}
