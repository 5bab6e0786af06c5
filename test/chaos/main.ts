import path from 'node:path';
import { parseOptions } from './options';
import { runChaos } from './run';
import { stopAllTopologies } from './topology';

/**
 * `npm run chaos -- [options]` (options.ts, docs/reliability.md). Exit status 0 only with 0
 * violations; the last line is the one-line summary.
 */
const root = path.resolve(__dirname, '..', '..', '..');

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), root);
  } catch (err) {
    console.error(`chaos: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
  const result = await runChaos(options, (line) => console.log(line));
  console.log(result.summary);
  return result.figures.violations === 0 ? 0 : 1;
}

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => {
    console.error(`\nchaos: ${signal}, stopping every process of the run…`);
    void stopAllTopologies().finally(() => process.exit(code));
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log(
      `chaos: the run failed before its check: ${err instanceof Error ? err.message : String(err)} — FAIL`,
    );
    process.exit(1);
  },
);
