import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * The layers of src/ (docs/architecture.md, "Layers") are kept by a lint rule; this checks the
 * rule fires for an import that goes up a layer, and stays quiet for one that goes down. ESLint
 * runs in a child process with the project's own config (jest cannot load its ES module config).
 */
const ROOT = path.join(__dirname, '..', '..');

/** Lints each case's file with one import line added; the no-restricted-imports messages per case. */
function layerErrors(cases: readonly (readonly [string, string])[]): string[][] {
  const script = `
    const fs = require('node:fs');
    const { ESLint } = require('eslint');
    (async () => {
      const eslint = new ESLint();
      const out = [];
      for (const [file, line] of JSON.parse(process.argv[1])) {
        const text = line + '\\n' + fs.readFileSync(file, 'utf8');
        const [result] = await eslint.lintText(text, { filePath: file });
        out.push(result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message));
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((err) => { console.error(err); process.exit(1); });`;
  const stdout = execFileSync(process.execPath, ['-e', script, JSON.stringify(cases)], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as string[][];
}

const UP: readonly (readonly [string, string])[] = [
  ['src/definition/duration.ts', "import type { SagaContext } from '../runtime/saga-state';"],
  ['src/definition/duration.ts', "import type { SagaLog } from '../runtime/journal';"],
  ['src/runtime/graph.ts', "import type { SagaRunner } from '../engine/runner';"],
  ['src/runtime/backoff.ts', "import { createHttpCaller } from '../participants/step-caller';"],
  ['src/engine/redrive.ts', "import type { SqliteSagaLog } from '../saga-log/sqlite';"],
  ['src/engine/redrive.ts', "import type { AppConfig } from '../config/config';"],
  ['src/clock.ts', "import type { SagaDefinition } from './definition/definition';"],
];
const DOWN: readonly (readonly [string, string])[] = [
  ['src/engine/redrive.ts', "import type { SagaContext } from '../runtime/saga-state';"],
  ['src/runtime/graph.ts', "import type { SagaDefinition } from '../definition/definition';"],
  ['src/saga-log/memory.ts', "import type { SagaRunner } from '../engine/runner';"],
];

describe('the layers of src/', () => {
  jest.setTimeout(120_000);
  let results: string[][] = [];
  beforeAll(() => {
    results = layerErrors([...UP, ...DOWN]);
  });

  it.each(UP.map((c, i) => [...c, i] as const))('%s may not: %s', (_file, _line, i) => {
    expect(results[i]).toHaveLength(1);
    expect(results[i]?.[0]).toMatch(/a layer imports only from the layers below it/);
  });

  it.each(DOWN.map((c, i) => [...c, UP.length + i] as const))('%s may: %s', (_file, _line, i) => {
    expect(results[i]).toEqual([]);
  });
});
