import type { ProcessFaultPlan } from './model';
import type { Topology } from './topology';

/**
 * The process faults of a round, one after the other, each at its point of progress: once
 * `afterRequest` requests were sent, a `timed` fault waits `delayMs`; a `mid-action` or
 * `mid-compensation` one waits for the next call of that kind to reach a participant and strikes
 * while the participant handles it (the kill is sent before the call is handled, so its answer is
 * lost: the in-doubt window), or after 5 s without such a call. The process stays down `downMs`,
 * then starts again on the same ports and data; the record says when it was back.
 */
export interface FaultRecord {
  readonly plan: ProcessFaultPlan;
  /** What made it strike: the timer, the call it waited for, or the fallback timer. */
  readonly trigger: 'timer' | 'action' | 'compensation' | 'fallback';
  readonly killedAt: number;
  readonly startedAt: number;
  /** Back and ready (sagamesh: "sagamesh ready"; Envoy: /ready; PostgreSQL: takes connections). */
  readonly readyAt: number;
  /** Starting it again failed this often before it worked (or `error`). */
  readonly restartFailures: number;
  readonly error?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const ARRIVAL_WAIT_MS = 5000;

function kill(topology: Topology, plan: ProcessFaultPlan): Promise<void> {
  switch (plan.kind) {
    case 'sagamesh-kill':
      return topology.killSagamesh(plan.instance);
    case 'envoy-kill':
      return topology.killEnvoy();
    case 'postgres-restart':
      return topology.crashPostgres();
  }
}

function restart(topology: Topology, plan: ProcessFaultPlan): Promise<void> {
  switch (plan.kind) {
    case 'sagamesh-kill':
      return topology.startSagamesh(plan.instance);
    case 'envoy-kill':
      return topology.startEnvoy();
    case 'postgres-restart':
      return topology.startPostgres();
  }
}

/** Strikes at the next call of `kind` (or after the fallback wait); resolves once the kill is done. */
async function strikeOnArrival(
  topology: Topology,
  plan: ProcessFaultPlan,
  kind: 'action' | 'compensation',
): Promise<{ trigger: FaultRecord['trigger']; killedAt: number }> {
  return new Promise((resolve, reject) => {
    let done = false;
    const fire = (trigger: FaultRecord['trigger']): void => {
      if (done) return;
      done = true;
      unsubscribe();
      clearTimeout(timer);
      const killedAt = Date.now();
      // kill() sends the signal before its first await: the call is handled by a dead peer.
      kill(topology, plan).then(() => resolve({ trigger, killedAt }), reject);
    };
    const unsubscribe = topology.participants.onArrival((k) => {
      if (k === kind) fire(kind);
    });
    const timer = setTimeout(() => fire('fallback'), ARRIVAL_WAIT_MS);
  });
}

export async function runFaults(
  topology: Topology,
  faults: readonly ProcessFaultPlan[],
  sent: () => number,
  log: (line: string) => void,
): Promise<FaultRecord[]> {
  const records: FaultRecord[] = [];
  for (const plan of faults) {
    while (sent() < plan.afterRequest) await sleep(20);
    let struck: { trigger: FaultRecord['trigger']; killedAt: number };
    if (plan.moment === 'timed') {
      await sleep(plan.delayMs);
      const killedAt = Date.now();
      await kill(topology, plan);
      struck = { trigger: 'timer', killedAt };
    } else {
      struck = await strikeOnArrival(
        topology,
        plan,
        plan.moment === 'mid-action' ? 'action' : 'compensation',
      );
    }
    await sleep(plan.downMs);
    const startedAt = Date.now();
    let restartFailures = 0;
    let error: string | undefined;
    for (;;) {
      try {
        await restart(topology, plan);
        break;
      } catch (err) {
        restartFailures++;
        error = err instanceof Error ? err.message : String(err);
        if (restartFailures >= 3) break;
        await sleep(500);
      }
    }
    const readyAt = Date.now();
    const record: FaultRecord = {
      plan,
      ...struck,
      startedAt,
      readyAt,
      restartFailures,
      ...(error !== undefined && restartFailures >= 3 ? { error } : {}),
    };
    records.push(record);
    log(
      `  ${plan.kind}${plan.kind === 'sagamesh-kill' && topology.instances > 1 ? ` #${plan.instance}` : ''} ` +
        `(${plan.moment}, struck by ${struck.trigger}) after request ${plan.afterRequest}: ` +
        `down ${startedAt - struck.killedAt} ms, ready ${readyAt - startedAt} ms later` +
        (restartFailures > 0 ? `, ${restartFailures} failed restarts` : ''),
    );
  }
  return records;
}
