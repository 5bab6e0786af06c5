import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { Metrics } from '../../src/admin/metrics';
import type { CliIo } from '../../src/cli/io';
import { runCli } from '../../src/cli/program';
import { DEFAULTS } from '../../src/config/config';
import { loadDefinitionText } from '../../src/definition/loader';
import type { DocBlock } from '../helpers/docs';
import {
  REPO_ROOT,
  allBlocks,
  answerDrift,
  blocksOf,
  consoleSteps,
  matchShown,
  skipReason,
  substitute,
  where,
} from '../helpers/docs';
import { shellWords } from '../helpers/shell-words';

/**
 * The examples of README.md and docs/ that need no server: the `sagamesh validate`/`graph`
 * sessions run on the real files with their output compared, saga definitions through the
 * server's loader, YAML and JSON parsed, file lists against the tree, PromQL against the metrics.
 * The demo-stack examples run in test/integration/docs-examples.test.ts. Every block is one of
 * these or marked `<!-- docs-test: skip (why) -->` (test/helpers/docs.ts): a new unmarked block fails here.
 */

type Check = 'skip' | 'demo-stack' | 'cli' | 'saga' | 'yaml' | 'json' | 'paths' | 'promql';

const CLI_COMMAND = /^sagamesh (validate|graph)\b/;

function checkOf(block: DocBlock): Check | undefined {
  if (skipReason(block) !== undefined) return 'skip';
  if (block.mark === 'paths') return block.mark;
  if (/^demo-stack(?: (?:keys|answer): .+)?$/.test(block.mark ?? '')) return 'demo-stack';
  if (block.mark !== undefined) return undefined; // a mark nobody understands is an error too
  if (block.lang === 'yaml') return /^kind: Saga$/m.test(block.text) ? 'saga' : 'yaml';
  if (block.lang === 'json') return 'json';
  if (block.lang === 'promql') return 'promql';
  if (block.lang === 'console' && consoleSteps(block.text).every((s) => CLI_COMMAND.test(s.command)))
    return 'cli';
  return undefined;
}

const blocks = allBlocks();
const byCheck = (check: Check): [string, DocBlock][] =>
  blocks.filter((b) => checkOf(b) === check).map((b) => [where(b), b]);

describe('docs examples: inventory', () => {
  it('finds the blocks of README.md and docs/', () => {
    expect(blocks.filter((b) => b.file === 'README.md').length).toBeGreaterThanOrEqual(5);
    expect(blocks.length).toBeGreaterThanOrEqual(35);
  });

  it('has a check for every block, or a mark that says why it cannot run', () => {
    const unchecked = blocks.filter((b) => checkOf(b) === undefined).map(where);
    expect(unchecked).toEqual([]);
  });

  it('lists the blocks it skips, with the reason', () => {
    const skipped = blocks.filter((b) => checkOf(b) === 'skip');
    process.stdout.write(
      `docs examples not run (${skipped.length} of ${blocks.length} blocks):\n${skipped
        .map((b) => `  ${where(b)}: ${skipReason(b)}\n`)
        .join('')}`,
    );
    expect(skipped.every((b) => (skipReason(b) ?? '').length > 5)).toBe(true);
  });

  it('reads marks on the line before a fence, a blank line between allowed', () => {
    const md = [
      '<!-- docs-test: skip (needs a cluster) -->',
      '```sh',
      'kubectl apply -k .',
      '```',
      '<!-- docs-test: demo-stack -->',
      '',
      '```console',
      '$ x',
      '```',
      '```',
      'plain',
      '```',
    ].join('\n');
    expect(blocksOf('x.md', md).map((b) => [b.line, b.lang, b.mark])).toEqual([
      [2, 'sh', 'skip (needs a cluster)'],
      [7, 'console', 'demo-stack'],
      [10, '', undefined],
    ]);
  });
});

describe('docs examples: the compare rule', () => {
  const id = '0b6f5c3e-1d2a-4b8c-9e7f-a1b2c3d4e5f6';
  const other = '9a8b7c6d-5e4f-4a3b-8c1d-0e9f8a7b6c5d';

  it('matches volatile values of their kind, the rest exactly, spaces in runs', () => {
    const shown = `${id}  book-trip@cb2a9af4db74  stuck  2026-11-23 12:41:07Z  812 ms\n`;
    const actual = `${other}    book-trip@cb2a9af4db74  stuck  2026-12-02 18:00:00Z  1.05 s\n`;
    expect(matchShown(shown, actual)?.get(id)).toBe(other);
    expect(matchShown(shown, actual.replace('stuck', 'failed'))).toBeUndefined();
    expect(matchShown(shown, actual.replace('cb2a9af4db74', '000000000000'))).toBeUndefined();
    expect(matchShown(shown, `${actual}one more line\n`)).toBeUndefined();
    const twice = '+11 ms  hotel  32 ms\n+11 ms  flight  32 ms\n';
    expect(matchShown(twice, '+25 ms  hotel  40 ms\n+26 ms  flight  44 ms\n')).toBeDefined();
  });

  it('holds a shown value to one actual value, and substitutes it in later commands', () => {
    const shown = `${id}\n${id}\n`;
    expect(matchShown(shown, `${other}\n${other}\n`)).toBeDefined();
    expect(matchShown(shown, `${other}\n${id}\n`)).toBeUndefined();
    const bindings = matchShown(shown, `${other}\n${other}\n`) ?? new Map<string, string>();
    expect(substitute(`sagamesh inspect ${id}`, bindings)).toBe(`sagamesh inspect ${other}`);
    expect(matchShown(`${id}: retrying\n`, `${id}: retrying\n`, bindings)).toBeUndefined();
  });

  it('holds a full JSON answer to every key and value, but for `"…"` and `[ … ]`', () => {
    const shown = '{ "sagaId": "…", "status": "stuck", "error": { "code": "X" }, "steps": [ … ] }';
    const actual = { sagaId: id, status: 'stuck', error: { code: 'X' }, steps: [{ name: 'hotel' }] };
    expect(answerDrift(shown, actual)).toEqual([]);
    expect(answerDrift(shown, { ...actual, status: 'compensated' })).toEqual([
      '$.status: "compensated", shown "stuck"',
    ]);
    expect(answerDrift(shown, { ...actual, error: { code: 'X', cause: {} } })).toEqual([
      '$.error.cause: not shown',
    ]);
    expect(answerDrift(shown, { sagaId: id, status: 'stuck', error: { code: 'X' } })).toEqual([
      '$.steps: shown, absent',
    ]);
  });
});

describe('docs examples: `sagamesh validate` and `graph` sessions, run on the real files', () => {
  it.each(byCheck('cli'))('%s', async (_where, block) => {
    let bindings = new Map<string, string>();
    for (const step of consoleSteps(block.text)) {
      let out = '';
      const io: CliIo = {
        stdout: (t) => void (out += t),
        stderr: (t) => void (out += t),
        env: {},
        cwd: REPO_ROOT,
      };
      const argv = shellWords(substitute(step.command, bindings)).slice(1);
      await runCli(argv, io, () => Promise.reject(new Error('serve is not a docs example')));
      const matched = matchShown(step.shown, out, bindings);
      if (!matched) expect(`$ ${step.command}\n${out}`).toBe(`$ ${step.command}\n${step.shown}`);
      bindings = matched ?? bindings;
    }
  });
});

describe('docs examples: definitions, YAML and JSON', () => {
  it.each(byCheck('saga'))('%s loads through the server loader', (_where, block) => {
    const { problems } = loadDefinitionText(`${block.file}:${block.line}.yaml`, block.text, {
      maxDeadlineMs: DEFAULTS.maxDeadlineMs,
    });
    expect(problems).toEqual([]);
  });

  it.each(byCheck('yaml'))('%s parses', (_where, block) => {
    expect(() => YAML.parse(block.text, { strict: true, prettyErrors: true }) as unknown).not.toThrow();
  });

  const jsonBlocks = blocks
    .filter((b) => b.lang === 'json' && checkOf(b) !== 'skip')
    .map((b): [string, DocBlock] => [where(b), b]);
  it.each(jsonBlocks)('%s parses (`[ … ]` and `{ … }` stand for elided content)', (_where, block) => {
    const text = block.text.replace(/\[\s*…\s*\]/g, '[]').replace(/\{\s*…\s*\}/g, '{}');
    expect(() => JSON.parse(text) as unknown).not.toThrow();
  });
});

describe('docs examples: file lists and queries', () => {
  it.each(byCheck('paths'))('%s names files that exist', (_where, block) => {
    const missing: string[] = [];
    for (const line of block.text.split('\n')) {
      const column = line.split(/ {3,}/)[0]?.trim() ?? '';
      let dir = '';
      for (const name of column.split(/,\s*|\s{2,}/).filter(Boolean)) {
        const full = name.includes('/') ? name : path.posix.join(dir, name);
        dir = name.includes('/') ? path.posix.dirname(name.replace(/\/$/, '/x')) : dir;
        if (!fs.existsSync(path.join(REPO_ROOT, full))) missing.push(full);
      }
    }
    expect(missing).toEqual([]);
  });

  it.each(byCheck('promql'))('%s queries metrics and labels that exist', async (_where, block) => {
    const metrics = new Metrics({ inFlight: () => 0, definitionsLoaded: () => 0, processMetrics: false });
    const labels = new Map(
      (await metrics.registry.getMetricsAsJSON()).map((m) => [
        m.name,
        new Set((metrics.registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames),
      ]),
    );
    const problems: string[] = [];
    const text = block.text.replace(/^#.*$/gm, '');
    for (const m of text.matchAll(/(sagamesh_\w+?)(?:_bucket|_sum|_count)?(?:\{([^}]*)\})?(?=[\s[{)])/g)) {
      const name = m[1] ?? '';
      const known = labels.get(name);
      if (!known) {
        problems.push(`no metric ${name}`);
        continue;
      }
      for (const sel of (m[2] ?? '').split(',').filter(Boolean)) {
        const label = sel.split(/[=!~]/)[0]?.trim() ?? '';
        if (!known.has(label)) problems.push(`${name} has no label ${label}`);
      }
    }
    for (const m of text.matchAll(/by \(([^)]*)\)/g))
      for (const label of (m[1] ?? '').split(',').map((l) => l.trim()))
        if (label !== 'le' && ![...labels.values()].some((s) => s.has(label)))
          problems.push(`no label ${label}`);
    expect(problems).toEqual([]);
  });
});
