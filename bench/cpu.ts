import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * CPU time of the bench's servers, from /proc: what one saga costs each process (sagamesh or DTM,
 * Envoy, the participants, the store), so a throughput figure can be read as "where did the two
 * cores go". A process is counted with its descendants (PostgreSQL's backends are children of the
 * postmaster); threads are part of their process already.
 */
const probes = new Map<string, number>();

/** Counts `pid` (and its descendants) as `name` from now on. */
export function probeCpu(name: string, pid: number): void {
  if (pid > 0) probes.set(name, pid);
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface ProcStat {
  readonly ppid: number;
  /** utime + stime, in clock ticks */
  readonly ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields after its last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // gone, or not ours to read
  }
}

/** CPU milliseconds used so far by every probed process and its descendants. */
export function cpuSnapshot(): Map<string, number> {
  const stats = new Map<number, ProcStat>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.set(Number(entry), stat);
  }
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of stats) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const treeTicks = (pid: number): number =>
    (stats.get(pid)?.ticks ?? 0) + (children.get(pid) ?? []).reduce((sum, c) => sum + treeTicks(c), 0);
  const msPerTick = 1000 / clockTicks();
  return new Map([...probes].map(([name, pid]) => [name, treeTicks(pid) * msPerTick]));
}

/** CPU milliseconds per request of each probed process between two snapshots (0 omitted). */
export function cpuPerRequest(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
  requests: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  if (requests <= 0) return out;
  for (const [name, ms] of after) {
    const used = ms - (before.get(name) ?? ms);
    if (used > 0) out[name] = Number((used / requests).toFixed(3));
  }
  return out;
}
