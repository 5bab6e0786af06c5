import fs from 'node:fs';
import path from 'node:path';

/**
 * Where the bench finds things: the repository root (works from bench/ and dist/bench/), the
 * project-local tools installed by bench/setup.sh, and the per-run directory for servers' data,
 * logs and raw load-generator results (.bench/, gitignored).
 */
function findRepoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bench'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`bench: no repository root above ${__dirname}`);
  }
}

export const REPO_ROOT = findRepoRoot();
export const TOOLS_BIN = path.join(REPO_ROOT, '.tools', 'bin');
export const VENV_PYTHON = path.join(REPO_ROOT, '.venv', 'bin', 'python');
/** The bench's saga definitions (YAML, checked in), loaded by every sagamesh variant. */
export const BENCH_SAGAS_DIR = path.join(REPO_ROOT, 'bench', 'sagas');
export const PLOT_SCRIPT = path.join(REPO_ROOT, 'bench', 'plot.py');
export const FLAME_SCRIPT = path.join(REPO_ROOT, 'bench', 'flame.py');
export const PROFILE_NOTES = path.join(REPO_ROOT, 'bench', 'notes.md');
export const SAGAMESH_ENTRY = path.join(REPO_ROOT, 'dist', 'src', 'main.js');
/** Compiled entry points of the bench's own helper processes. */
export const PARTICIPANTS_ENTRY = path.join(__dirname, 'participants', 'main.js');
export const DIRECT_ENTRY = path.join(__dirname, 'direct', 'main.js');

export function tool(name: string): string {
  const file = path.join(TOOLS_BIN, name);
  if (!fs.existsSync(file)) throw new Error(`bench: ${file} is missing; run bench/setup.sh first`);
  return file;
}

/** The version bench/setup.sh pinned for a tool (it writes <tool>.version beside the binary). */
export function toolVersion(name: string): string {
  try {
    return fs.readFileSync(path.join(TOOLS_BIN, `${name}.version`), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** A fresh directory for this run under .bench/runs/<stamp>/ (the previous runs stay until removed). */
export function makeRunDir(stamp: string): string {
  const dir = path.join(REPO_ROOT, '.bench', 'runs', stamp);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}
