import path from 'node:path';
import type { CallFaultKind, ProcessFaultKind, StoreKind } from './model';
import { CALL_FAULT_KINDS } from './model';
import { freshSeed } from './prng';

/**
 * Command line of `npm run chaos -- [options]` (docs/reliability.md):
 *   (none)              the long run: 5,000 sagas per store (SQLite, then PostgreSQL), 110 process faults
 *   --quick             the CI round: 150 sagas per store, a few faults of each kind
 *   --seed N            replay the plan of seed N (default: a fresh seed, printed)
 *   --stores a,b        sqlite, postgres (default both)
 *   --sagas N           sagas per store
 *   --concurrency N     clients at once
 *   --definitions N     random saga definitions per store
 *   --kills a=N,b=M     process faults per store: sagamesh-kill, envoy-kill, postgres-restart
 *   --without a,b       leave per-call fault kinds out of the plan: 5xx, refuse, drop, garbage, slow
 *   --out DIR           where logs and records go (default .chaos/runs/<time>-seed-<seed>)
 */
export interface ChaosOptions {
  readonly seed: number;
  readonly quick: boolean;
  readonly stores: readonly StoreKind[];
  readonly sagas: number;
  readonly concurrency: number;
  readonly definitions: number;
  readonly kills: Readonly<Record<StoreKind, Readonly<Record<ProcessFaultKind, number>>>>;
  readonly without: readonly CallFaultKind[];
  readonly out: string;
}

const QUICK_KILLS: ChaosOptions['kills'] = {
  sqlite: { 'sagamesh-kill': 3, 'envoy-kill': 2, 'postgres-restart': 0 },
  postgres: { 'sagamesh-kill': 2, 'envoy-kill': 1, 'postgres-restart': 2 },
};
const LONG_KILLS: ChaosOptions['kills'] = {
  sqlite: { 'sagamesh-kill': 45, 'envoy-kill': 15, 'postgres-restart': 0 },
  postgres: { 'sagamesh-kill': 25, 'envoy-kill': 10, 'postgres-restart': 15 },
};

function positiveInt(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a non-negative integer, not "${text}"`);
  return n;
}

export function parseOptions(argv: readonly string[], root: string, now = new Date()): ChaosOptions {
  const known = [
    '--quick',
    '--seed',
    '--stores',
    '--sagas',
    '--concurrency',
    '--definitions',
    '--kills',
    '--without',
    '--out',
  ];
  for (const arg of argv) {
    if (arg.startsWith('--') && !known.includes(arg))
      throw new Error(`unknown option ${arg} (${known.join(' ')})`);
  }
  const has = (flag: string): boolean => argv.includes(flag);
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = has('--quick');
  const seed = positiveInt('--seed', value('--seed'), freshSeed());
  const stores = (value('--stores') ?? 'sqlite,postgres').split(',');
  for (const s of stores)
    if (s !== 'sqlite' && s !== 'postgres') throw new Error(`--stores: unknown store "${s}"`);
  const without = (value('--without')?.split(',') ?? []) as CallFaultKind[];
  for (const w of without)
    if (!CALL_FAULT_KINDS.includes(w))
      throw new Error(`--without: unknown fault "${w}" (${CALL_FAULT_KINDS.join(', ')})`);
  const base = quick ? QUICK_KILLS : LONG_KILLS;
  const kills = { sqlite: { ...base.sqlite }, postgres: { ...base.postgres } };
  for (const pair of value('--kills')?.split(',') ?? []) {
    const [kind, n] = pair.split('=');
    if (kind !== 'sagamesh-kill' && kind !== 'envoy-kill' && kind !== 'postgres-restart')
      throw new Error(`--kills: unknown fault "${kind ?? ''}"`);
    kills.sqlite[kind] = positiveInt('--kills', n, 0);
    kills.postgres[kind] = positiveInt('--kills', n, 0);
  }
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  return {
    seed,
    quick,
    stores: stores as StoreKind[],
    sagas: positiveInt('--sagas', value('--sagas'), quick ? 150 : 5000),
    concurrency: positiveInt('--concurrency', value('--concurrency'), quick ? 8 : 12),
    definitions: positiveInt('--definitions', value('--definitions'), quick ? 12 : 24),
    kills,
    without,
    out: path.resolve(root, value('--out') ?? path.join('.chaos', 'runs', `${stamp}-seed-${seed}`)),
  };
}
