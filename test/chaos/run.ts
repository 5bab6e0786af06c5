import fs from 'node:fs';
import path from 'node:path';
import { signatureOf } from './diagnose';
import type { ChaosOptions } from './options';
import { planRound } from './plan';
import { createRng } from './prng';
import type { RunFigures } from './report';
import { describeViolations, figureLines, figures, summaryLine } from './report';
import type { RoundResult } from './round';
import { runRound } from './round';

/**
 * A chaos run: one round per store (SQLite with one sagamesh; PostgreSQL with two sharing it),
 * each from its own stream of the seed. Used by `npm run chaos` (main.ts) and by the quick round
 * in `npm test` (test/integration/chaos-quick.test.ts).
 */
export interface ChaosResult {
  readonly rounds: readonly RoundResult[];
  readonly figures: RunFigures;
  /** Every violation, described (the first ones in detail). */
  readonly report: readonly string[];
  readonly summary: string;
}

export async function runChaos(options: ChaosOptions, log: (line: string) => void): Promise<ChaosResult> {
  const started = Date.now();
  fs.mkdirSync(options.out, { recursive: true });
  log(
    `chaos seed=${options.seed} (${options.quick ? 'quick' : 'long'} run; replay with --seed ${options.seed}); records in ${options.out}`,
  );
  const rng = createRng(options.seed);
  const rounds: RoundResult[] = [];
  const report: string[] = [];
  for (const store of options.stores) {
    const roundRng = rng.fork(store);
    const plan = planRound(roundRng, {
      store,
      sagas: options.sagas,
      concurrency: options.concurrency,
      definitions: options.definitions,
      kills: options.kills[store],
      without: options.without,
    });
    const round = await runRound(plan, {
      dir: path.join(options.out, store),
      rng: roundRng,
      log,
      quietTimeoutMs: 120_000,
      client: { maxAttempts: 40, requestTimeoutMs: 70_000 },
    });
    rounds.push(round);
    const f = figures([round], options.seed, options.quick, round.totalMs);
    log(
      `round ${store} done in ${Math.round(round.totalMs / 1000)} s (load ${Math.round(round.loadMs / 1000)} s, quiet ${Math.round(round.quietMs / 1000)} s)`,
    );
    for (const line of figureLines(f)) log(`  ${line}`);
    fs.writeFileSync(
      path.join(options.out, store, 'violations.jsonl'),
      round.check.violations
        .map((v) =>
          JSON.stringify({
            ...v,
            signature: signatureOf(v, v.sagaId ? round.logs.get(v.sagaId) : undefined),
          }),
        )
        .join('\n'),
    );
    // The logs of the violating sagas: a PostgreSQL round's database goes with its server.
    fs.writeFileSync(
      path.join(options.out, store, 'violating-sagas.jsonl'),
      [...round.logs]
        .filter(([id]) => round.check.violations.some((v) => v.sagaId === id))
        .map(([sagaId, log]) => JSON.stringify({ sagaId, ...log }))
        .join('\n'),
    );
    const described = describeViolations(round, options.seed);
    for (const d of described) log(d);
    report.push(...described);
  }
  const all = figures(rounds, options.seed, options.quick, Date.now() - started);
  fs.writeFileSync(path.join(options.out, 'figures.json'), `${JSON.stringify(all, null, 2)}\n`);
  fs.writeFileSync(path.join(options.out, 'violations.txt'), report.join('\n\n'));
  return { rounds, figures: all, report, summary: summaryLine(all) };
}
