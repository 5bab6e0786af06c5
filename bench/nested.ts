import fs from 'node:fs';
import path from 'node:path';
import type { EnvoyProcess } from '../demo/envoy';
import { startEnvoy } from '../demo/envoy';
import type { AttackResult } from './load/vegeta';
import type { Target } from './load/target';
import { describe, measure, QBOX_RATE, SATURATION_WORKERS } from './cases';
import { renderBenchEnvoyConfig } from './envoy-config';
import { DIRECT_ENTRY, PARTICIPANTS_ENTRY } from './layout';
import { machineInfo } from './machine';
import type { Options } from './options';
import type { Child } from './processes';
import { canConnect, freePort, onCleanup, spawnLogged, waitFor } from './processes';
import { startSagamesh } from './systems/sagamesh';
import type { System } from './systems/system';

/**
 * Qbox's nested topologies (issue 17): a root saga whose every step is a middle service that runs
 * a saga of its own over leaf participants. `1toNtoM` is one root, N middle services, M leaves under
 * each (N × M leaf calls a saga) — the reading under which Qbox's own figures agree (its serial
 * 1to3to6 and 1to5to5 took 50 and 46 ms per leaf call).
 *
 * Every middle node is a service with its own Envoy and its own sagamesh (and its own direct
 * process, for the baseline), all on loopback:
 *
 *   client → root Envoy ingress → root sagamesh ─ root Envoy egress → middle i's Envoy ingress →
 *            middle i's sagamesh ─ middle i's Envoy egress → leaves p1…pM (the bench participants)
 *
 * The baseline does the same nested fan-out by hand (bench/direct/main.ts): the client calls the
 * root direct process, which calls every middle through the root egress and middle i's Envoy (a
 * plain ingress, no filter) into middle i's direct process, which calls its leaves through middle
 * i's egress. As in the flat cases, the client reaches the direct process without an ingress Envoy.
 *
 * Each topology starts its own set of processes and stops them after it is measured.
 */
export type NestedName = '1to2to2' | '1to3to6' | '1to5to5';

export interface NestedTopology {
  readonly name: NestedName;
  readonly middles: number;
  readonly leaves: number;
}

export const NESTED_TOPOLOGIES: readonly NestedTopology[] = [
  { name: '1to2to2', middles: 2, leaves: 2 },
  { name: '1to3to6', middles: 3, leaves: 6 },
  { name: '1to5to5', middles: 5, leaves: 5 },
];

/** Qbox's report, GKE, 10 requests/s, p50 (ms): not measured here. Its steps ran one after another. */
export const QBOX_NESTED_P50_MS: Readonly<Record<NestedName, { qbox: number; rabbitmq: number }>> = {
  '1to2to2': { qbox: 78.9, rabbitmq: 143.0 },
  '1to3to6': { qbox: 895, rabbitmq: 155.1 },
  '1to5to5': { qbox: 1157, rabbitmq: 159.5 },
};

/** Participants answer after this long in every nested cell (issue 17's speed target). */
export const NESTED_LATENCY_MS = 20;

export const NESTED_SYSTEMS = ['nested-direct', 'nested-sagamesh'] as const;

export interface NestedSample {
  readonly topology: NestedName;
  readonly load: 'rate' | 'saturation';
  readonly system: (typeof NESTED_SYSTEMS)[number];
  readonly run: number;
  readonly result: AttackResult;
}

export interface NestedResults {
  readonly date: string;
  /** `<cores> × <CPU model>` of the box it ran on (the rest of a report may come from another). */
  readonly machine?: string;
  readonly latencyMs: number;
  readonly rate: number;
  readonly workers: number;
  readonly durations: { readonly rateS: number; readonly saturationS: number };
  readonly runs: number;
  readonly samples: readonly NestedSample[];
}

const middleName = (i: number): string => `m${i + 1}`;
const leafName = (j: number): string => `p${j + 1}`;

/**
 * A saga whose steps each book at one service (`http://<name>/bookings`, sent the request's part
 * under its name) and cancel by the id it answered; `spec` is the match and anything beside it.
 */
function sagaDefinition(name: string, spec: string, services: readonly string[], success: string): string {
  const steps = services
    .map(
      (s) => `    - name: ${s}
      action:
        request: { method: POST, url: http://${s}/bookings, body: '\${request.body.${s}}' }
        timeout: 5s
        retry: { attempts: 3, backoff: 50ms }
        success: [200, 201]
      compensation:
        request: { method: DELETE, url: 'http://${s}/bookings/\${steps.${s}.response.body.id}' }
        timeout: 5s
`,
    )
    .join('');
  return `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: ${name} }
spec:
${spec}
  deadline: 10s
  respond: aggregate
  steps:
${steps}  response:
    success: { status: 201, body: ${success} }
    failure: { status: 409 }
`;
}

/** The root's saga: one step per middle service, each sent its part of the request. */
export function rootDefinition(t: NestedTopology): string {
  return sagaDefinition(
    `nested-${t.name}`,
    `  match: { method: POST, path: /bench/nested-${t.name} }`,
    Array.from({ length: t.middles }, (_, i) => middleName(i)),
    "{ sagaId: '${saga.id}' }",
  );
}

/** A middle service's saga: its leaves, and an undo route for a parent that compensates it. */
export function middleDefinition(t: NestedTopology): string {
  return sagaDefinition(
    `middle-${t.leaves}`,
    `  match: { method: POST, path: /bookings }
  undo:
    match: { method: DELETE, path: '/bookings/{sagaId}' }`,
    Array.from({ length: t.leaves }, (_, j) => leafName(j)),
    "{ id: '${saga.id}' }",
  );
}

/** The saga request: middle i's part is one payload per leaf (`{ "ms": 20 }`). */
export function nestedRequest(t: NestedTopology, middleKey: (i: number) => string): Record<string, unknown> {
  const leaves = Object.fromEntries(
    Array.from({ length: t.leaves }, (_, j) => [leafName(j), { ms: NESTED_LATENCY_MS }]),
  );
  return Object.fromEntries(Array.from({ length: t.middles }, (_, i) => [middleKey(i), leaves]));
}

interface Node {
  readonly envoy: EnvoyProcess;
  readonly sagameshIngress: number;
  readonly plainIngress: number;
  readonly directPort: number;
  readonly children: readonly Child[];
}

/**
 * One service's node: an Envoy (ingress with the filter → this node's sagamesh, a plain ingress →
 * this node's direct process, an egress to `routes`), its sagamesh and its direct process.
 */
async function startNode(
  name: string,
  dir: string,
  sagas: string,
  routes: Readonly<Record<string, number>>,
  middle: boolean,
): Promise<Node> {
  const sagasDir = path.join(dir, `${name}-sagas`);
  fs.mkdirSync(sagasDir, { recursive: true });
  fs.writeFileSync(path.join(sagasDir, `${name}.yaml`), sagas);
  const ports = {
    admin: await freePort(),
    egress: await freePort(),
    ingress: await freePort(),
    extProc: await freePort(),
    plainIngress: await freePort(),
    direct: await freePort(),
  };
  const egressUrl = `http://127.0.0.1:${ports.egress}`;
  const sagamesh = await startSagamesh(
    { id: `nested-${name}`, label: name, store: 'memory' },
    { runDir: dir, extProcPort: ports.extProc, egressUrl, sagasDir },
  );
  if (!sagamesh.child) throw new Error(`nested ${name}: sagamesh refused to start: ${sagamesh.refused}`);
  const direct = spawnLogged(
    `direct-${name}`,
    process.execPath,
    [DIRECT_ENTRY, JSON.stringify({ port: ports.direct, egressUrl, middle })],
    path.join(dir, `direct-${name}.log`),
  );
  await waitFor(direct, () => canConnect(ports.direct));
  const configYaml = renderBenchEnvoyConfig({
    admin: ports.admin,
    egress: ports.egress,
    upstream: ports.direct,
    plainIngress: ports.plainIngress,
    variants: { [name]: { ingress: ports.ingress, extProc: ports.extProc } },
    participants: routes,
  });
  fs.writeFileSync(path.join(dir, `envoy-${name}.yaml`), configYaml);
  const envoy = await startEnvoy({ configYaml, adminPort: ports.admin });
  onCleanup(`envoy-${name}`, () => envoy.stop());
  return {
    envoy,
    sagameshIngress: ports.ingress,
    plainIngress: ports.plainIngress,
    directPort: ports.direct,
    children: [sagamesh.child, direct],
  };
}

function post(url: string, body: unknown): () => Target {
  const target: Target = {
    method: 'POST',
    url,
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  };
  return () => target;
}

interface NestedLab {
  readonly systems: readonly System[];
  stop(): Promise<void>;
}

async function startNestedLab(t: NestedTopology, runDir: string): Promise<NestedLab> {
  const dir = path.join(runDir, `nested-${t.name}`);
  fs.mkdirSync(dir, { recursive: true });
  const leafPorts: Record<string, number> = {};
  for (let j = 0; j < t.leaves; j++) leafPorts[leafName(j)] = await freePort();
  const control = await freePort();
  const participants = spawnLogged(
    'participants',
    process.execPath,
    [PARTICIPANTS_ENTRY, JSON.stringify({ participants: leafPorts, upstream: await freePort(), control })],
    path.join(dir, 'participants.log'),
  );
  await waitFor(participants, () => canConnect(control));

  const nodes: Node[] = [];
  const rootRoutes: Record<string, number> = {};
  for (let i = 0; i < t.middles; i++) {
    const node = await startNode(middleName(i), dir, middleDefinition(t), leafPorts, true);
    nodes.push(node);
    rootRoutes[middleName(i)] = node.sagameshIngress;
    rootRoutes[`${middleName(i)}-direct`] = node.plainIngress;
  }
  const root = await startNode('root', dir, rootDefinition(t), rootRoutes, false);
  nodes.push(root);
  const systems: System[] = [
    {
      id: 'nested-direct',
      label: 'direct: the nested fan-out by hand, no coordinator',
      available: true,
      targets: () =>
        post(
          `http://127.0.0.1:${root.directPort}/direct/${t.name}`,
          nestedRequest(t, (i) => `${middleName(i)}-direct`),
        ),
    },
    {
      id: 'nested-sagamesh',
      label: 'sagamesh: a sagamesh and an Envoy per service, in-memory logs',
      available: true,
      targets: () =>
        post(`http://127.0.0.1:${root.sagameshIngress}/bench/nested-${t.name}`, nestedRequest(t, middleName)),
    },
  ];
  return {
    systems,
    stop: async () => {
      for (const node of nodes) {
        await node.envoy.stop();
        for (const c of node.children) await c.stop('SIGTERM', 10_000);
      }
      await participants.stop('SIGTERM', 10_000);
    },
  };
}

/**
 * The nested cells: per topology, 10 sagas/s (open loop) and saturation (closed loop), both systems
 * interleaved run by run, participants answering after NESTED_LATENCY_MS.
 */
export async function runNested(o: Options, runDir: string): Promise<NestedResults> {
  const samples: NestedSample[] = [];
  const loads = [
    { load: 'rate', mode: { kind: 'open', rate: QBOX_RATE }, durationS: o.latencyDurationS },
    {
      load: 'saturation',
      mode: { kind: 'closed', workers: SATURATION_WORKERS },
      durationS: o.saturationDurationS,
    },
  ] as const;
  for (const t of NESTED_TOPOLOGIES) {
    process.stdout.write(`  nested ${t.name}: starting ${t.middles + 1} Envoys and sagameshes…\n`);
    const lab = await startNestedLab(t, runDir);
    try {
      for (const system of lab.systems) {
        await measure(
          system,
          `nested/${t.name}/warmup`,
          undefined, // the nested systems' targets need no saga spec
          { kind: 'closed', workers: 8 },
          o.warmupS,
          runDir,
          'warmup',
        );
      }
      for (let run = 1; run <= o.runs; run++) {
        for (const l of loads) {
          for (const system of lab.systems) {
            const cell = `nested/${t.name}/${l.load}`;
            const result = await measure(system, cell, undefined, l.mode, l.durationS, runDir, `run${run}`);
            process.stdout.write(`  [${run}/${o.runs}] ${cell} ${system.id}: ${describe(result)}\n`);
            samples.push({
              topology: t.name,
              load: l.load,
              system: system.id as NestedSample['system'],
              run,
              result,
            });
          }
        }
      }
    } finally {
      await lab.stop();
    }
  }
  const m = machineInfo({});
  return {
    date: new Date().toISOString(),
    machine: `${m.cpus} × ${m.cpuModel}`,
    latencyMs: NESTED_LATENCY_MS,
    rate: QBOX_RATE,
    workers: SATURATION_WORKERS,
    durations: { rateS: o.latencyDurationS, saturationS: o.saturationDurationS },
    runs: o.runs,
    samples,
  };
}
