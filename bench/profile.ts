import fs from 'node:fs';
import path from 'node:path';

/**
 * Summarises a V8 CPU profile written by `node --cpu-prof`: self time per function, self time per
 * area (sagamesh's own code, each library, node internals, GC), and a folded-stacks file
 * (`profile.folded`, one "frame;frame;… samples" line per stack) that flamegraph.pl or speedscope
 * turn into a flame graph.
 */
interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface ProfileSummary {
  readonly title: string;
  /** Sampled time that was not idle, in ms. */
  readonly totalMs: number;
  readonly top: readonly { name: string; where: string; selfPct: number }[];
  readonly byArea: readonly { area: string; selfPct: number }[];
}

function areaOf(frame: CallFrame): string {
  const u = frame.url;
  if (u === '') {
    if (frame.functionName === '(garbage collector)') return 'garbage collector';
    if (frame.functionName === '(program)') return 'V8/native (program)';
    return frame.functionName || 'native';
  }
  const lib = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (lib?.[1]) return lib[1];
  if (u.startsWith('node:')) return 'node internals';
  const m = /\/dist\/src\/([^/]+)/.exec(u);
  if (m?.[1]) return `sagamesh src/${m[1].replace(/\.js$/, '')}`;
  return 'other';
}

function short(url: string, line: number): string {
  const rel = url.replace(/^file:\/\//, '').replace(/^.*?\/(node_modules|dist)\//, '$1/');
  return rel ? `${rel}:${line + 1}` : '';
}

export function summariseProfile(file: string, title: string, outDir: string): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totalSamples = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const msPerSample = totalSamples > 0 ? (profile.endTime - profile.startTime) / 1000 / totalSamples : 0;
  const idle = profile.nodes
    .filter((n) => n.callFrame.functionName === '(idle)')
    .reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const busy = totalSamples - idle;

  const fn = new Map<string, { name: string; where: string; hits: number }>();
  const area = new Map<string, number>();
  const folded = new Map<string, number>();
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (hits === 0 || n.callFrame.functionName === '(idle)') continue;
    const key = `${n.callFrame.functionName}@${n.callFrame.url}:${n.callFrame.lineNumber}`;
    const entry = fn.get(key) ?? {
      name: n.callFrame.functionName || '(anonymous)',
      where: short(n.callFrame.url, n.callFrame.lineNumber),
      hits: 0,
    };
    entry.hits += hits;
    fn.set(key, entry);
    const a = areaOf(n.callFrame);
    area.set(a, (area.get(a) ?? 0) + hits);
    const stack: string[] = [];
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)?.callFrame;
      if (f && f.functionName !== '(root)')
        stack.unshift(`${f.functionName || '(anonymous)'} ${short(f.url, f.lineNumber)}`.trim());
    }
    const line = stack.join(';');
    folded.set(line, (folded.get(line) ?? 0) + hits);
  }
  fs.writeFileSync(
    path.join(outDir, 'profile.folded'),
    [...folded.entries()].map(([stack, hits]) => `${stack} ${hits}`).join('\n'),
  );
  const pct = (hits: number): number => (busy > 0 ? (100 * hits) / busy : 0);
  return {
    title,
    totalMs: busy * msPerSample,
    top: [...fn.values()]
      .sort((a, b) => b.hits - a.hits)
      .slice(0, 25)
      .map((f) => ({ name: f.name, where: f.where, selfPct: pct(f.hits) })),
    byArea: [...area.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([a, hits]) => ({ area: a, selfPct: pct(hits) })),
  };
}
