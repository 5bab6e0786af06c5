import fs from 'node:fs';
import path from 'node:path';
import type { EnvoyProcess } from '../demo/envoy';
import { startEnvoy } from '../demo/envoy';
import { probeCpu } from './cpu';
import { renderBenchEnvoyConfig } from './envoy-config';
import { PARTICIPANTS_ENTRY, TOOLS_BIN } from './layout';
import type { Child } from './processes';
import { canConnect, freePort, httpPost, onCleanup, spawnLogged, waitFor } from './processes';
import type { StoreServer } from './stores';
import { startEtcd, startPostgres, startRedis } from './stores';
import { startDirect } from './systems/direct';
import { startDtm } from './systems/dtm';
import type { SagameshProcess, SagameshVariant } from './systems/sagamesh';
import { sagameshSystem, startSagamesh } from './systems/sagamesh';
import type { System } from './systems/system';
import { ALL_PARTICIPANTS } from './topology';

/**
 * Everything a run measures, started once, side by side on loopback: the participants (one
 * process), one Envoy (ingress per sagamesh variant, plain ingress, shared egress), the sagamesh
 * variants, the direct client, Redis + PostgreSQL + a 3-member etcd, and DTM with each store. Systems are measured
 * one at a time; the idle ones wait (none of them does background work worth a mention: DTM polls
 * its store every few seconds).
 */
export interface Lab {
  /** In table order. */
  readonly systems: readonly System[];
  readonly byId: ReadonlyMap<string, System>;
  readonly passthrough: {
    readonly withFilter: string;
    /** The same ingress, on envoy/envoy.yaml's route that disables the filter (`/static/`). */
    readonly optedOut: string;
    readonly withoutFilter: string;
    /** An ingress whose filter asks bench/extproc-min (Go) instead of sagamesh; absent without it. */
    readonly minimalServer?: string;
  };
  /** The memory case's own sagamesh (memory store), idle until then. */
  readonly hold: { readonly url: string; readonly pid: number | undefined; readonly adminUrl: string };
  readonly participantsControl: string;
  readonly envoy: EnvoyProcess;
  readonly stores: readonly StoreServer[];
  readonly sagamesh: ReadonlyMap<string, SagameshProcess>;
}

export interface LabOptions {
  readonly runDir: string;
  /** Node flags for the sagamesh-memory process (e.g. --cpu-prof). */
  readonly profileFlags?: readonly string[];
  /** Node flags for the memory case's sagamesh (e.g. --max-old-space-size). */
  readonly holdFlags?: readonly string[];
}

export function sagameshVariants(runDir: string, postgresUrl: string, etcdUrl: string): SagameshVariant[] {
  return [
    { id: 'memory', label: 'sagamesh, in-memory log', store: 'memory' },
    { id: 'sqlite', label: 'sagamesh, SQLite log', store: `sqlite:${path.join(runDir, 'sagamesh.db')}` },
    // What the fsyncs cost: WAL with synchronous=NORMAL survives a process crash, not a power loss.
    {
      id: 'sqlite-normal',
      label: 'sagamesh, SQLite log, synchronous=normal',
      store: `sqlite:${path.join(runDir, 'sagamesh-normal.db')}?synchronous=normal`,
    },
    { id: 'postgres', label: 'sagamesh, PostgreSQL log', store: postgresUrl },
    { id: 'etcd', label: 'sagamesh, etcd log (3 members)', store: etcdUrl },
  ];
}

/** The ingress (and ext_proc cluster) name of the bench/extproc-min baseline in envoy-config.ts. */
const MINIMAL_VARIANT = 'extproc-min';

/** Starts bench/extproc-min if bench/setup.sh built it; undefined (and a note) if not. */
async function startExtProcMin(runDir: string): Promise<{ port: number } | undefined> {
  const bin = path.join(TOOLS_BIN, 'extproc-min');
  if (!fs.existsSync(bin)) {
    process.stdout.write(`  extproc-min: not built (bench/setup.sh), its pass-through baseline is skipped\n`);
    return undefined;
  }
  const port = await freePort();
  const child = spawnLogged(
    'extproc-min',
    bin,
    ['-addr', `127.0.0.1:${port}`],
    path.join(runDir, 'extproc-min.log'),
  );
  await waitFor(child, () => canConnect(port));
  process.stdout.write(`  extproc-min: pid ${child.pid}\n`);
  return { port };
}

export async function startLab(options: LabOptions): Promise<Lab> {
  const { runDir } = options;
  const participantPorts: Record<string, number> = {};
  for (const p of ALL_PARTICIPANTS) participantPorts[p] = await freePort();
  const upstream = await freePort();
  const control = await freePort();
  const participants: Child = spawnLogged(
    'participants',
    process.execPath,
    [PARTICIPANTS_ENTRY, JSON.stringify({ participants: participantPorts, upstream, control })],
    path.join(runDir, 'participants.log'),
  );
  await waitFor(participants, () => canConnect(control));

  const redis = await startRedis(runDir);
  const postgres = await startPostgres(runDir);
  const etcd = await startEtcd(runDir);

  const egress = await freePort();
  const egressUrl = `http://127.0.0.1:${egress}`;
  const variants = [
    ...sagameshVariants(runDir, postgres.url, etcd.url),
    { id: 'hold', label: 'sagamesh, in-memory log (memory case)', store: 'memory' },
  ];
  const ports: Record<string, { ingress: number; extProc: number }> = {};
  const sagamesh = new Map<string, SagameshProcess>();
  for (const v of variants) {
    ports[v.id] = { ingress: await freePort(), extProc: await freePort() };
    const proc = await startSagamesh(v, {
      runDir,
      extProcPort: ports[v.id]?.extProc ?? 0,
      egressUrl,
      ...(v.id === 'memory' && options.profileFlags ? { nodeFlags: options.profileFlags } : {}),
      ...(v.id === 'hold' && options.holdFlags ? { nodeFlags: options.holdFlags } : {}),
    });
    sagamesh.set(v.id, proc);
    process.stdout.write(`  sagamesh ${v.id}: ${proc.child ? `pid ${proc.child.pid}` : proc.refused}\n`);
  }

  // The smallest ext_proc server (bench/extproc-min): its own ingress, a baseline for pass-through.
  const minimal = await startExtProcMin(runDir);
  if (minimal) ports[MINIMAL_VARIANT] = { ingress: await freePort(), extProc: minimal.port };

  const admin = await freePort();
  const plainIngress = await freePort();
  const configYaml = renderBenchEnvoyConfig({
    admin,
    egress,
    upstream,
    plainIngress,
    variants: ports,
    participants: participantPorts,
  });
  fs.writeFileSync(path.join(runDir, 'envoy.yaml'), configYaml);
  const envoy = await startEnvoy({ configYaml, adminPort: admin });
  onCleanup('envoy', () => envoy.stop());
  probeCpu('envoy', envoy.pid);
  // BENCH_ENVOY_DEBUG=http2,ext_proc turns those Envoy loggers to debug (diagnosing failed streams).
  for (const logger of (process.env['BENCH_ENVOY_DEBUG'] ?? '').split(',').filter(Boolean)) {
    await httpPost(`${envoy.adminUrl}/logging?${logger}=debug`);
  }

  const direct = await startDirect(runDir, egressUrl);
  const dtmBolt = await startDtm({ runDir, store: 'boltdb', egressUrl });
  const dtmRedis = await startDtm({ runDir, store: 'redis', egressUrl, redisPort: redis.port });

  const systems: System[] = [direct];
  for (const v of variants.filter((x) => x.id !== 'hold')) {
    const proc = sagamesh.get(v.id) ?? {};
    systems.push(sagameshSystem(`sagamesh-${v.id}`, v.label, ports[v.id]?.ingress ?? 0, proc));
  }
  systems.push(dtmBolt, dtmRedis);
  const memory = sagamesh.get('memory') ?? {};
  systems.push(
    sagameshSystem(
      'serial',
      'serial: sagamesh (in-memory log), steps chained',
      ports['memory']?.ingress ?? 0,
      memory,
      'serial',
    ),
  );
  const hold = sagamesh.get('hold');
  return {
    systems,
    byId: new Map(systems.map((s) => [s.id, s])),
    passthrough: {
      withFilter: `http://127.0.0.1:${ports['memory']?.ingress ?? 0}/passthrough`,
      optedOut: `http://127.0.0.1:${ports['memory']?.ingress ?? 0}/static/passthrough`,
      withoutFilter: `http://127.0.0.1:${plainIngress}/passthrough`,
      ...(minimal
        ? { minimalServer: `http://127.0.0.1:${ports[MINIMAL_VARIANT]?.ingress ?? 0}/passthrough` }
        : {}),
    },
    hold: {
      url: `http://127.0.0.1:${ports['hold']?.ingress ?? 0}`,
      pid: hold?.child?.pid,
      adminUrl: envoy.adminUrl,
    },
    participantsControl: `http://127.0.0.1:${control}`,
    envoy,
    stores: [redis, postgres, ...etcd.members],
    sagamesh,
  };
}
