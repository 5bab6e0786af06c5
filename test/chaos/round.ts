import fs from 'node:fs';
import path from 'node:path';
import type { SagaLogView } from './admin';
import { listNotDone, sagaLog } from './admin';
import type { CheckResult } from './checker';
import { check } from './checker';
import type { ClientOptions } from './client';
import { classify, runClient, send } from './client';
import type { FaultRecord } from './faults';
import { runFaults } from './faults';
import type { ClientRecord, ExitEvent, LogStatus, ParticipantEvent, RoundPlan } from './model';
import type { Rng } from './prng';
import type { RecoveryFigure } from './recovery';
import { inFlightCandidates, recoveryFigure } from './recovery';
import type { Topology } from './topology';
import { startTopology } from './topology';

/**
 * One round: start the processes, let the clients run the plan's requests (`concurrency` at a
 * time, in plan order) while the process faults strike, bring everything back, wait until the
 * system is quiet (no saga running or compensating in the log, no slow effect pending at a
 * participant), send every keyed request once more (its answer must not change), then check.
 */
export interface RoundSettings {
  readonly dir: string;
  readonly rng: Rng;
  readonly log: (line: string) => void;
  /** Longest wait for the system to become quiet after the load. */
  readonly quietTimeoutMs: number;
  readonly client: Omit<ClientOptions, 'ingressUrl'>;
}

export interface RoundResult {
  readonly plan: RoundPlan;
  readonly clients: readonly ClientRecord[];
  readonly events: readonly ParticipantEvent[];
  readonly faults: readonly FaultRecord[];
  readonly notDone: readonly LogStatus[];
  readonly exits: readonly ExitEvent[];
  readonly check: CheckResult;
  /** The saga log of every saga a violation names (GET /sagas/{id}). */
  readonly logs: ReadonlyMap<string, SagaLogView | undefined>;
  readonly participantFaults: Readonly<Record<string, number>>;
  readonly recovery: readonly RecoveryFigure[];
  readonly loadMs: number;
  readonly quietMs: number;
  readonly totalMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function anyAdmin<T>(topology: Topology, fn: (url: string) => Promise<T>): Promise<T> {
  let last: unknown;
  for (const [i, url] of topology.adminUrls.entries()) {
    if (!topology.sagameshUp(i)) continue;
    try {
      return await fn(url);
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof Error ? last : new Error('no sagamesh admin API answers');
}

/** Everything back up: a fault left nothing down, but a crash nobody asked for might have. */
async function restoreAll(topology: Topology): Promise<void> {
  if (!topology.postgresUp()) await topology.startPostgres();
  for (let i = 0; i < topology.instances; i++) if (!topology.sagameshUp(i)) await topology.startSagamesh(i);
  if (!topology.envoyUp()) await topology.startEnvoy();
}

async function waitQuiet(topology: Topology, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let calm = 0;
  while (Date.now() < end) {
    const busy =
      topology.participants.pending() > 0 ||
      (await anyAdmin(topology, (url) => listNotDone(url, ['running', 'compensating'])).catch(() => [1]))
        .length > 0;
    calm = busy ? 0 : calm + 1;
    if (calm >= 2) return;
    await sleep(1000);
  }
}

/** Once quiet, each keyed request is sent again: its final answer must not change (or must come now). */
async function lateReplays(
  options: ClientOptions,
  plan: RoundPlan,
  clients: ClientRecord[],
  concurrency: number,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < clients.length; i = next++) {
      const c = clients[i];
      const request = plan.requests[i];
      if (!c || !request || c.key === undefined || c.unexpected !== undefined) continue;
      const attempts = [...c.attempts];
      let finalAttempt = c.finalAttempt;
      let verdict = c.verdict;
      for (let tries = 0; tries < 10; tries++) {
        const a = await send(options, request, finalAttempt !== undefined);
        attempts.push(a);
        const cl = classify(a);
        if (cl.final && finalAttempt === undefined) {
          finalAttempt = attempts.length - 1;
          verdict = cl.verdict;
        }
        if (cl.final || !cl.retry) break;
        await sleep(1000);
      }
      clients[i] = { ...c, attempts, verdict, ...(finalAttempt !== undefined ? { finalAttempt } : {}) };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export async function runRound(plan: RoundPlan, settings: RoundSettings): Promise<RoundResult> {
  const { log } = settings;
  const startedAt = Date.now();
  fs.mkdirSync(settings.dir, { recursive: true });
  const topology = await startTopology({
    store: plan.store,
    instances: plan.instances,
    definitions: plan.definitions,
    dir: settings.dir,
  });
  try {
    const options: ClientOptions = { ...settings.client, ingressUrl: topology.ingressUrl };
    log(
      `round ${plan.store}: ${plan.requests.length} sagas over ${plan.definitions.length} definitions, ` +
        `${plan.faults.length} process faults, ${plan.instances} sagamesh instance(s), concurrency ${plan.concurrency}`,
    );

    const clients: ClientRecord[] = new Array<ClientRecord>(plan.requests.length);
    let sent = 0;
    let done = 0;
    const clientRng = settings.rng.fork('client-timing');
    const worker = async (): Promise<void> => {
      for (let i = sent++; i < plan.requests.length; i = sent++) {
        const request = plan.requests[i];
        if (!request) continue;
        clients[i] = await runClient(options, request, clientRng.fork(request.ref));
        done++;
      }
    };
    const progress = setInterval(() => log(`  … ${done}/${plan.requests.length} clients done`), 30_000);
    const faulting = runFaults(topology, plan.faults, () => sent, log);
    await Promise.all(Array.from({ length: plan.concurrency }, worker));
    const faults = await faulting;
    clearInterval(progress);
    const loadMs = Date.now() - startedAt;

    await restoreAll(topology);
    const quietFrom = Date.now();
    await waitQuiet(topology, settings.quietTimeoutMs);
    await lateReplays(options, plan, clients, plan.concurrency);
    const quietMs = Date.now() - quietFrom;

    const notDone = await anyAdmin(topology, (url) => listNotDone(url));
    const events = topology.participants.events();
    const exits = [...topology.unexpectedExits()];
    for (const f of faults) {
      if (f.error)
        exits.push({ process: f.plan.kind, at: f.startedAt, code: null, tail: `restart failed: ${f.error}` });
    }
    const struck = faults.map((f) => ({ kind: f.plan.kind, killedAt: f.killedAt, readyAt: f.readyAt }));
    const result = check({ definitions: plan.definitions, events, clients, notDone, exits, faults: struck });

    const logs = new Map<string, SagaLogView | undefined>();
    const lookup = async (id: string): Promise<SagaLogView | undefined> => {
      if (!logs.has(id))
        logs.set(id, await anyAdmin(topology, (url) => sagaLog(url, id)).catch(() => undefined));
      return logs.get(id);
    };
    const violating = new Set(result.violations.flatMap((v) => (v.sagaId ? [v.sagaId] : [])));
    for (const id of [...violating].slice(0, 2000)) await lookup(id);
    const recovery: RecoveryFigure[] = [];
    for (const f of faults) {
      const views = new Map<string, SagaLogView | undefined>();
      for (const id of inFlightCandidates(f, events, clients)) views.set(id, await lookup(id));
      recovery.push(recoveryFigure(f, views, clients));
    }
    fs.writeFileSync(
      path.join(settings.dir, 'participants.jsonl'),
      events.map((e) => JSON.stringify(e)).join('\n'),
    );
    fs.writeFileSync(
      path.join(settings.dir, 'clients.jsonl'),
      clients.map((c) => JSON.stringify(c)).join('\n'),
    );
    return {
      plan,
      clients,
      events,
      faults,
      notDone,
      exits,
      check: result,
      logs,
      participantFaults: topology.participants.faultCounts(),
      recovery,
      loadMs,
      quietMs,
      totalMs: Date.now() - startedAt,
    };
  } finally {
    await topology.stop();
  }
}
