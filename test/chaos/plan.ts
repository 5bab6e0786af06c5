import { generateDefinitions } from './definitions';
import type {
  CallFault,
  CallFaultKind,
  ChaosRequestBody,
  DefinitionModel,
  FaultMoment,
  ProcessFaultKind,
  ProcessFaultPlan,
  RequestPlan,
  RoundPlan,
  StepModel,
  StoreKind,
  UpstreamFault,
} from './model';
import type { Rng } from './prng';

/**
 * The plan of one round, a pure function of the seed and the options: the definitions, every
 * client request with the fault script of each call it will cause, and the process faults with
 * the point of progress (requests sent) at which each strikes. Timing on a real machine decides
 * which sagas a kill interrupts; everything here is the same for the same seed.
 */
export interface RoundOptions {
  readonly store: StoreKind;
  readonly sagas: number;
  readonly concurrency: number;
  readonly definitions: number;
  /** Process faults of each kind (postgres-restart only counts on PostgreSQL). */
  readonly kills: Readonly<Record<ProcessFaultKind, number>>;
  /** Per-call fault kinds left out of the plan (diagnosis: tell one defect from the others). */
  readonly without: readonly CallFaultKind[];
}

/** Weights of the action scripts; `T` is the step's timeout. */
function actionScripts(step: StepModel): (readonly [readonly CallFault[], number])[] {
  const t = step.timeoutMs;
  return [
    [[], 60],
    [['5xx'], 8],
    [['5xx', '5xx'], 3],
    [['refuse'], 1.5],
    [['5xx', 'refuse'], 0.5],
    [['drop'], 6],
    [['garbage'], 4],
    // Past the timeout: the caller gives up, the participant applies later (the retry joins it).
    [[`slow:${t + Math.min(400, Math.round(t / 2))}`], 7],
    // Slow but in time.
    [[`slow:${Math.round(t / 3)}`], 5],
  ];
}

function undoScripts(step: StepModel): (readonly [readonly CallFault[], number])[] {
  const t = step.undoTimeoutMs;
  return [
    [[], 70],
    [['5xx'], 10],
    [['5xx', '5xx'], 3],
    [['drop'], 6],
    [['garbage'], 4],
    [[`slow:${t + Math.min(400, Math.round(t / 2))}`], 7],
  ];
}

const UPSTREAM: (readonly [UpstreamFault | 'slow', number])[] = [
  ['commit', 75],
  ['refuse', 10],
  ['fail', 8],
  ['slow', 7],
];

const kindOf = (fault: CallFault): string => fault.split(':')[0] ?? fault;

function allowed(
  entries: (readonly [readonly CallFault[], number])[],
  without: readonly CallFaultKind[],
): (readonly [readonly CallFault[], number])[] {
  return entries.filter(([script]) => script.every((f) => !without.includes(kindOf(f) as CallFaultKind)));
}

export function requestBody(
  rng: Rng,
  ref: string,
  definition: DefinitionModel,
  without: readonly CallFaultKind[],
): ChaosRequestBody {
  const f: Record<string, { a?: readonly CallFault[]; u?: readonly CallFault[] }> = {};
  for (const step of definition.steps) {
    const a = rng.weighted(allowed(actionScripts(step), without));
    const u = rng.weighted(allowed(undoScripts(step), without));
    if (a.length > 0 || u.length > 0)
      f[step.name] = { ...(a.length ? { a } : {}), ...(u.length ? { u } : {}) };
  }
  if (definition.respond === 'aggregate') return { ref, f };
  const pick = rng.weighted(UPSTREAM);
  const upstream: UpstreamFault = pick === 'slow' ? `slow:${rng.int(200, 1500)}` : pick;
  return { ref, f, upstream };
}

const MOMENTS: Record<ProcessFaultKind, (readonly [FaultMoment, number])[]> = {
  'sagamesh-kill': [
    ['timed', 40],
    ['mid-action', 25],
    ['mid-compensation', 35],
  ],
  'envoy-kill': [
    ['timed', 60],
    ['mid-action', 20],
    ['mid-compensation', 20],
  ],
  'postgres-restart': [
    ['timed', 50],
    ['mid-action', 25],
    ['mid-compensation', 25],
  ],
};

function planFaults(rng: Rng, options: RoundOptions, instances: number): ProcessFaultPlan[] {
  const faults: ProcessFaultPlan[] = [];
  for (const [kind, n] of Object.entries(options.kills) as [ProcessFaultKind, number][]) {
    if (kind === 'postgres-restart' && options.store !== 'postgres') continue;
    for (let i = 0; i < n; i++) {
      // With two instances, a killed one stays down past the lease TTL (1.5 s) about half the
      // time: the other one takes its sagas over.
      const maxDown = kind === 'sagamesh-kill' && instances > 1 ? 4000 : 1500;
      faults.push({
        afterRequest: Math.floor(options.sagas * (0.05 + 0.85 * rng.next())),
        kind,
        moment: rng.weighted(MOMENTS[kind]),
        delayMs: rng.int(0, 400),
        downMs: rng.int(0, maxDown),
        instance: rng.int(0, instances - 1),
      });
    }
  }
  return faults.sort((a, b) => a.afterRequest - b.afterRequest);
}

export function planRound(rng: Rng, options: RoundOptions): RoundPlan {
  const instances = options.store === 'postgres' ? 2 : 1;
  const definitions = generateDefinitions(rng.fork('definitions'), options.definitions);
  const clients = rng.fork('requests');
  const requests: RequestPlan[] = [];
  for (let index = 0; index < options.sagas; index++) {
    const r = clients.fork(`request-${index}`);
    const definition = r.pick(definitions);
    const ref = `${options.store}-r${index}`;
    const keyed = r.chance(0.9);
    requests.push({
      index,
      ref,
      definition: definition.name,
      path: definition.path,
      ...(keyed ? { key: `key-${ref}` } : {}),
      body: requestBody(r, ref, definition, options.without),
      resendAfterFinal: keyed && r.chance(0.2),
    });
  }
  return {
    store: options.store,
    instances,
    concurrency: options.concurrency,
    definitions,
    requests,
    faults: planFaults(rng.fork('faults'), options, instances),
  };
}
