import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseOptions } from '../chaos/options';
import { freshSeed } from '../chaos/prng';
import { runChaos } from '../chaos/run';

/**
 * The quick chaos round (`npm run chaos -- --quick --seed N`, docs/reliability.md) as part of
 * `npm test`: random definitions, per-call faults, kill -9 of sagamesh and Envoy, PostgreSQL
 * crashes and two instances sharing PostgreSQL — on the real processes, with a fresh seed each
 * time (SAGAMESH_CHAOS_SEED pins one). A failure prints the seed, every violation with its saga's
 * events, and the command that replays the plan.
 */
jest.setTimeout(20 * 60_000);

const ROOT = path.resolve(__dirname, '..', '..');

it('keeps every saga all-or-nothing through a quick chaos round on SQLite and PostgreSQL', async () => {
  const seed = Number(process.env['SAGAMESH_CHAOS_SEED'] ?? freshSeed());
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-chaos-'));
  const options = parseOptions(['--quick', '--seed', String(seed), '--out', out], ROOT);
  const lines: string[] = [];
  const result = await runChaos(options, (line) => lines.push(line));
  console.log(`${result.summary}\nreplay: npm run chaos -- --quick --seed ${seed}`);
  if (result.figures.violations > 0) {
    throw new Error(
      [...lines, result.summary, `records: ${out}`, `replay: npm run chaos -- --quick --seed ${seed}`].join(
        '\n',
      ),
    );
  }
  expect(result.figures.sagas).toBe(300);
  fs.rmSync(out, { recursive: true, force: true });
});
