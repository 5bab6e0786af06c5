/**
 * `npm run bench` — issue #6: sagamesh against the direct floor, DTM and the Qbox topologies, side
 * by side in one run. See bench/options.ts for the command line and BENCHMARKS.md for the method.
 *
 *   bench/setup.sh                       once: vegeta, DTM, Redis, PostgreSQL, matplotlib
 *   npm run bench                        full run (~45 min on 2 cores), rewrites BENCHMARKS.md
 *   npm run bench -- --quick --only latency --no-report
 *   npm run bench -- --profile           sagamesh under node --cpu-prof at saturation
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Cell, Sample, SweepPoint } from './cases';
import { buildCells, measure, passthroughSystems, runCells, runSweep, spec, warmUp, describe } from './cases';
import type { Lab } from './lab';
import { startLab } from './lab';
import { FLAME_SCRIPT, makeRunDir, REPO_ROOT, tool, VENV_PYTHON } from './layout';
import type { MachineInfo } from './machine';
import { machineInfo } from './machine';
import type { MemoryResult } from './memory';
import type { NestedResults } from './nested';
import { runNested } from './nested';
import { runMemoryCase } from './memory';
import type { Options } from './options';
import { parseOptions } from './options';
import { cleanupAll, httpGet, installSignalHandlers } from './processes';
import type { ProfileSummary } from './profile';
import { summariseProfile } from './profile';
import { renderChart } from './report/chart';
import type { Results } from './report/results';
import { nestedVerdicts } from './report/nested';
import { verdicts } from './report/targets';
import { renderReport } from './report/write';

const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
const LATEST = path.join(RESULTS_DIR, 'latest.json');
const PROFILE_JSON = path.join(RESULTS_DIR, 'profile.json');
const CHART = path.join(RESULTS_DIR, 'latency-vs-load.png');
const FLAME = path.join(RESULTS_DIR, 'flame.png');
const REPORT = path.join(REPO_ROOT, 'BENCHMARKS.md');

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function writeReport(results: Results): void {
  const profile = results.profile ?? readProfile();
  const full: Results = profile ? { ...results, profile } : results;
  const chart = renderChart(full, CHART) ? path.relative(REPO_ROOT, CHART) : undefined;
  const flame = fs.existsSync(FLAME) ? path.relative(REPO_ROOT, FLAME) : undefined;
  fs.writeFileSync(REPORT, renderReport(full, chart, flame));
  // Everything committed under bench/results is formatted the way `npm run lint` checks it.
  format([REPORT, LATEST, PROFILE_JSON, CHART.replace(/\.png$/, '.json')]);
  log(`wrote ${path.relative(REPO_ROOT, REPORT)}${chart ? ` and ${chart}` : ''}`);
}

function format(files: readonly string[]): void {
  const existing = files.filter((f) => fs.existsSync(f));
  execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'prettier'), ['--write', ...existing], {
    stdio: 'ignore',
  });
}

function readProfile(): ProfileSummary | undefined {
  try {
    return JSON.parse(fs.readFileSync(PROFILE_JSON, 'utf8')) as ProfileSummary;
  } catch {
    return undefined;
  }
}

function printVerdicts(results: Results): void {
  log('\ntargets:');
  for (const v of verdicts(results)) log(`  [${v.met}] ${v.target}: ${v.measured} → ${v.ratio}`);
}

async function profileRun(lab: Lab, o: Options, runDir: string): Promise<void> {
  const system = lab.byId.get('sagamesh-memory');
  const proc = lab.sagamesh.get('memory')?.child;
  if (!system?.available || !proc) throw new Error('profile: sagamesh-memory did not start');
  await warmUp([system], o, runDir);
  const s = spec('1to4', 0);
  const durationS = o.quick ? 5 : 15;
  const r = await measure(
    system,
    'profile',
    s,
    { kind: 'closed', workers: 64 },
    durationS,
    runDir,
    'profile',
  );
  log(`  profiled saturation 1to4 @ 0 ms: ${describe(r)}`);
  await proc.stop('SIGTERM', 20_000); // main.ts exits on SIGTERM; node writes the profile then
  const profDir = path.join(runDir, 'profile');
  const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`profile: no .cpuprofile in ${profDir}`);
  const summary = summariseProfile(
    path.join(profDir, file),
    `\`node --cpu-prof\`, whole process life: warm-up, then ${durationS} s closed loop (64 clients), 1to4 @ 0 ms, ${r.throughput.toFixed(0)} sagas/s`,
    profDir,
  );
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(PROFILE_JSON, JSON.stringify(summary, null, 2));
  format([PROFILE_JSON]);
  execFileSync(
    VENV_PYTHON,
    [
      FLAME_SCRIPT,
      path.join(profDir, 'profile.folded'),
      FLAME,
      `sagamesh (in-memory log), 1to4 at saturation`,
    ],
    { stdio: 'inherit' },
  );
  log(`profile: ${path.join(profDir, file)}; folded stacks: ${path.join(profDir, 'profile.folded')}`);
  for (const f of summary.top.slice(0, 15))
    log(`  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  log('  by area:');
  for (const a of summary.byArea) log(`  ${a.selfPct.toFixed(1).padStart(5)}%  ${a.area}`);
}

/**
 * `--only nested`: the nested cells alone, on their own processes (no stores, DTM or flat lab);
 * their figures replace the `nested` part of bench/results/latest.json and BENCHMARKS.md is
 * rewritten from it, the other sections as the last full run left them.
 */
async function nestedOnly(o: Options, runDir: string): Promise<void> {
  log(
    `bench run (nested only, ${o.quick ? 'quick' : 'full'}, ${o.runs} run(s)); logs in ${path.relative(REPO_ROOT, runDir)}`,
  );
  let nested: NestedResults;
  try {
    nested = await runNested(o, runDir);
  } finally {
    log('stopping everything…');
    await cleanupAll();
  }
  fs.writeFileSync(path.join(runDir, 'nested.json'), JSON.stringify(nested, null, 2));
  const last = fs.existsSync(LATEST) ? (JSON.parse(fs.readFileSync(LATEST, 'utf8')) as Results) : undefined;
  if (!last) {
    log('no bench/results/latest.json to add the nested figures to: run the full bench once');
    return;
  }
  const results: Results = { ...last, nested };
  log('\ntargets:');
  for (const v of nestedVerdicts(nested)) log(`  [${v.met}] ${v.target}: ${v.measured} → ${v.ratio}`);
  if (o.report) {
    fs.writeFileSync(LATEST, JSON.stringify(results, null, 2));
    writeReport(results);
  }
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.reportOnly) {
    writeReport(JSON.parse(fs.readFileSync(path.join(o.reportOnly, 'results.json'), 'utf8')) as Results);
    return;
  }
  tool('vegeta');
  installSignalHandlers();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  if (o.only.length === 1 && o.only[0] === 'nested') {
    await nestedOnly(o, makeRunDir(stamp));
    return;
  }
  tool('dtm');
  const runDir = makeRunDir(stamp);
  log(
    `bench run ${stamp} (${o.quick ? 'quick' : 'full'}, ${o.runs} run(s)); data and logs in ${path.relative(REPO_ROOT, runDir)}`,
  );

  let cells: Cell[] = [];
  let samples: Sample[] = [];
  let sweep: SweepPoint[] = [];
  let memory: MemoryResult | undefined;
  let nested: NestedResults | undefined;
  let machine: MachineInfo;
  let lab: Lab | undefined;
  try {
    log('starting participants, stores, sagamesh variants, Envoy, direct client, DTM…');
    lab = await startLab({
      runDir,
      ...(o.profile
        ? { profileFlags: ['--cpu-prof', `--cpu-prof-dir=${path.join(runDir, 'profile')}`] }
        : {}),
      ...(o.memoryHeapMb ? { holdFlags: [`--max-old-space-size=${o.memoryHeapMb}`] } : {}),
    });
    machine = machineInfo(Object.fromEntries(lab.stores.map((s) => [s.name, s.version])));
    if (o.profile) {
      await profileRun(lab, o, runDir);
      return;
    }
    const systems = new Map([...lab.byId, ...passthroughSystems(lab).map((s) => [s.id, s] as const)]);
    cells = buildCells(o);
    log('warming up…');
    await warmUp(lab.systems, o, runDir);
    if (o.only.includes('memory')) {
      // First, on a fresh box: nothing else is still draining. The memory case's sagamesh keeps
      // thousands of sagas running for a minute afterwards, so it is stopped right after.
      log(`memory case: ${o.memorySagas} sagas in flight…`);
      memory = await runMemoryCase(lab, o, runDir);
      if (memory)
        log(
          `  peak RSS ${(memory.hwmBytes / 2 ** 20).toFixed(0)} MB, ${memory.peakStreams} streams open, ` +
            `participants' peak ${memory.peakParticipantCalls} calls, ${memory.answered['201'] ?? 0} of ` +
            `${memory.sagas} answered 201 within 30 s, p50 ${(memory.p50Ms / 1000).toFixed(1)} s`,
        );
      await lab.sagamesh.get('hold')?.child?.stop('SIGKILL');
      await new Promise((r) => setTimeout(r, 5000));
    }
    if (cells.length > 0) {
      log(`measuring ${cells.length} cells × ${o.runs} run(s)…`);
      samples = await runCells(cells, systems, o, runDir);
    }
    if (o.only.includes('sweep')) {
      log('sweeping offered load…');
      sweep = await runSweep(systems, o, runDir);
    }
    if (o.only.includes('nested')) {
      log('nested sagas…');
      nested = await runNested(o, runDir);
    }
  } finally {
    // Envoy's counters (ext_proc errors, overflows, resets) explain unexpected answers afterwards.
    if (lab) {
      fs.writeFileSync(
        path.join(runDir, 'envoy-stats.txt'),
        (await httpGet(`${lab.envoy.adminUrl}/stats`)).body,
      );
      fs.writeFileSync(path.join(runDir, 'envoy.log'), lab.envoy.logs());
    }
    log('stopping everything…');
    await cleanupAll();
  }

  const results: Results = {
    quick: o.quick,
    runs: o.runs,
    durations: { latencyS: o.latencyDurationS, saturationS: o.saturationDurationS, sweepS: o.sweepDurationS },
    machine,
    systems: [...lab.systems, ...passthroughSystems(lab)].map((s) => ({
      id: s.id,
      label: s.label,
      available: s.available,
      ...(s.unavailable ? { unavailable: s.unavailable } : {}),
    })),
    cells,
    samples,
    sweep,
    ...(memory ? { memory } : {}),
    ...(nested ? { nested } : {}),
  };
  fs.writeFileSync(path.join(runDir, 'results.json'), JSON.stringify(results, null, 2));
  printVerdicts(results);
  if (o.report) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    fs.writeFileSync(LATEST, JSON.stringify(results, null, 2));
    writeReport(results);
  }
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
