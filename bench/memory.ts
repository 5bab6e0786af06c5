import type { Lab } from './lab';
import { attack } from './load/vegeta';
import type { Options } from './options';
import { httpGet, isAlive, memoryOf } from './processes';
import { sagaRequest, TOPOLOGIES } from './topology';

/**
 * The memory case: N sagas in flight at once in one sagamesh (in-memory log, its own process,
 * idle until now), 1to4 with every participant holding its answer 5 s (bench/sagas/hold-1to4.yaml).
 * vegeta opens them open-loop at N/5 per second for 5 s, so all N are open before the first could
 * finish. While they run, every 250 ms: sagamesh's VmRSS, Envoy's count of open ext_proc streams
 * to it (`cluster.sagamesh-hold.upstream_rq_active`: one stream per saga, open until its answer),
 * and the participants' calls in progress.
 */
export interface MemoryResult {
  readonly sagas: number;
  readonly idleRssBytes: number;
  /** VmRSS when the most streams were open. */
  readonly rssAtPeakBytes: number;
  /** VmHWM at the end of the case: the most the process ever held. */
  readonly hwmBytes: number;
  readonly peakStreams: number;
  readonly peakParticipantCalls: number;
  readonly answered: Readonly<Record<string, number>>;
  readonly p50Ms: number;
  /** `--max-old-space-size` the process ran with, if the run set one (--memory-heap-mb). */
  readonly heapLimitMb?: number;
  /** The process died during the case (e.g. out of heap): its last figures are what it reached. */
  readonly died?: boolean;
}

const HOLD_MS = 5000;

async function openStreams(adminUrl: string): Promise<number> {
  const r = await httpGet(`${adminUrl}/stats?filter=^cluster\\.sagamesh-hold\\.upstream_rq_active$`);
  return Number(/upstream_rq_active: (\d+)/.exec(r.body)?.[1] ?? 0);
}

async function participantCalls(control: string): Promise<number> {
  const r = await httpGet(`${control}/stats`);
  try {
    const stats = JSON.parse(r.body) as { participants: { inFlight: number }[] };
    return stats.participants.reduce((n, p) => n + p.inFlight, 0);
  } catch {
    return 0;
  }
}

export async function runMemoryCase(lab: Lab, o: Options, dir: string): Promise<MemoryResult | undefined> {
  const pid = lab.hold.pid;
  if (pid === undefined) return undefined;
  const idle = memoryOf(pid);
  const body = JSON.stringify(sagaRequest(TOPOLOGIES['1to4'], HOLD_MS));
  const durationS = 5;
  let peakStreams = 0;
  let rssAtPeak = idle.rss;
  let peakCalls = 0;
  let sampling = true;
  let lastHwm = idle.hwm;
  const sampler = (async () => {
    while (sampling) {
      const [streams, calls] = await Promise.all([
        openStreams(lab.hold.adminUrl),
        participantCalls(lab.participantsControl),
      ]);
      if (!isAlive(pid)) break;
      const mem = memoryOf(pid);
      lastHwm = mem.hwm;
      if (streams >= peakStreams) {
        peakStreams = streams;
        rssAtPeak = mem.rss;
      }
      peakCalls = Math.max(peakCalls, calls);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const result = await attack(
    {
      name: 'memory',
      targets: () => ({
        method: 'POST',
        url: `${lab.hold.url}/bench/hold-1to4`,
        body,
        headers: { 'content-type': 'application/json' },
      }),
      mode: { kind: 'open', rate: Math.ceil(o.memorySagas / durationS) },
      durationS,
      timeoutS: 30,
      expected: [201],
    },
    dir,
  );
  sampling = false;
  await sampler;
  const died = !isAlive(pid);
  const end = died ? { rss: 0, hwm: lastHwm } : memoryOf(pid);
  return {
    sagas: result.requests,
    idleRssBytes: idle.rss,
    rssAtPeakBytes: rssAtPeak,
    hwmBytes: end.hwm,
    peakStreams,
    peakParticipantCalls: peakCalls,
    answered: result.statusCodes,
    p50Ms: result.p50Ms,
    ...(o.memoryHeapMb ? { heapLimitMb: o.memoryHeapMb } : {}),
    ...(died ? { died } : {}),
  };
}
