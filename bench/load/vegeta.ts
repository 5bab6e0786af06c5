import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { tool } from '../layout';
import type { Targeter } from './target';

/**
 * Drives vegeta (github.com/tsenart/vegeta, pinned in bench/setup.sh):
 * - open loop: `-rate=R/1s` — requests are sent on schedule whether or not earlier ones have
 *   answered (vegeta adds workers as needed), so a slow system cannot slow the load down and hide
 *   its queueing (no coordinated omission);
 * - closed loop: `-rate=0 -workers=W -max-workers=W` — W clients each send the next request when
 *   the previous one answered: the saturation throughput at concurrency W.
 * Targets are streamed to vegeta's stdin (`-lazy`), one JSON target per request, so every DTM saga
 * gets its own gid. Raw results go to a file and `vegeta report -type=json` summarises them
 * (exact percentiles over every request).
 */
export type LoadMode =
  { readonly kind: 'open'; readonly rate: number } | { readonly kind: 'closed'; readonly workers: number };

export interface Attack {
  readonly name: string;
  readonly targets: Targeter;
  readonly mode: LoadMode;
  readonly durationS: number;
  readonly timeoutS?: number;
  /** HTTP statuses that mean "the saga finished as asked" (success or its expected failure). */
  readonly expected: readonly number[];
}

export interface AttackResult {
  readonly requests: number;
  /** Answers with an expected status per second of the attack (including the wait for the last). */
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly statusCodes: Readonly<Record<string, number>>;
  /** Requests without an expected status (errors, timeouts, 5xx). */
  readonly unexpected: number;
  readonly errors: readonly string[];
  /** CPU milliseconds per request of each server process during the attack (bench/cpu.ts). */
  readonly cpuMsPerRequest?: Readonly<Record<string, number>>;
}

interface VegetaReport {
  latencies: { mean: number; '50th': number; '90th': number; '99th': number; max: number };
  duration: number;
  wait: number;
  requests: number;
  status_codes: Record<string, number> | null;
  errors: string[] | null;
}

const run = promisify(execFile);

function* lines(targets: Targeter): Generator<string> {
  for (;;) {
    const t = targets();
    const target: Record<string, unknown> = { method: t.method, url: t.url };
    if (t.body !== undefined) target['body'] = Buffer.from(t.body).toString('base64');
    if (t.headers) target['header'] = Object.fromEntries(Object.entries(t.headers).map(([k, v]) => [k, [v]]));
    yield `${JSON.stringify(target)}\n`;
  }
}

export async function attack(a: Attack, dir: string): Promise<AttackResult> {
  const vegeta = tool('vegeta');
  const out = path.join(dir, `${a.name}.bin`);
  const args = [
    'attack',
    '-format=json',
    '-lazy',
    `-duration=${a.durationS}s`,
    `-timeout=${a.timeoutS ?? 30}s`,
    `-output=${out}`,
  ];
  if (a.mode.kind === 'open') args.push(`-rate=${a.mode.rate}/1s`);
  else args.push('-rate=0', `-workers=${a.mode.workers}`, `-max-workers=${a.mode.workers}`);
  const child = spawn(vegeta, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const feed = Readable.from(lines(a.targets));
  child.stdin.on('error', () => undefined); // EPIPE once vegeta stops reading: expected
  feed.pipe(child.stdin);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  feed.unpipe(child.stdin);
  feed.destroy();
  if (code !== 0) throw new Error(`vegeta attack ${a.name} exited ${code}: ${stderr}`);
  const { stdout } = await run(vegeta, ['report', '-type=json', out], { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as VegetaReport;
  const codes = r.status_codes ?? {};
  const good = a.expected.reduce((n, s) => n + (codes[String(s)] ?? 0), 0);
  const seconds = (r.duration + r.wait) / 1e9;
  const ms = (ns: number): number => ns / 1e6;
  if (!process.env['BENCH_KEEP_RAW']) fs.rmSync(out, { force: true });
  return {
    requests: r.requests,
    throughput: seconds > 0 ? good / seconds : 0,
    p50Ms: ms(r.latencies['50th']),
    p90Ms: ms(r.latencies['90th']),
    p99Ms: ms(r.latencies['99th']),
    maxMs: ms(r.latencies.max),
    meanMs: ms(r.latencies.mean),
    statusCodes: codes,
    unexpected: r.requests - good,
    errors: (r.errors ?? []).slice(0, 5),
  };
}
