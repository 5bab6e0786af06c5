import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLOT_SCRIPT, VENV_PYTHON } from '../layout';
import type { Results } from './results';

/** Writes the sweep as JSON and renders the PNG with bench/plot.py (matplotlib in the .venv). */
export function renderChart(results: Results, outPng: string): boolean {
  if (results.sweep.length === 0) return false;
  const systems = [...new Set(results.sweep.map((p) => p.system))];
  const data = {
    title: `sagamesh vs direct vs DTM — 1to4, participants answering at once (${results.machine.cpus} cores, ${results.machine.date.slice(0, 10)})`,
    series: systems.map((id) => ({
      label: results.systems.find((s) => s.id === id)?.label.replace(/ \(.*\)$/, '') ?? id,
      points: results.sweep
        .filter((p) => p.system === id)
        .map((p) => ({
          rate: p.rate,
          p50: p.result.p50Ms,
          p99: p.result.p99Ms,
          behind: p.result.throughput < 0.9 * p.rate,
        })),
    })),
  };
  const json = outPng.replace(/\.png$/, '.json');
  fs.mkdirSync(path.dirname(outPng), { recursive: true });
  fs.writeFileSync(json, JSON.stringify(data, null, 2));
  execFileSync(VENV_PYTHON, [PLOT_SCRIPT, json, outPng], { stdio: 'inherit' });
  return true;
}
