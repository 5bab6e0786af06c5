import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { EnvoyPorts, EnvoyProcess } from '../../demo/envoy';
import { renderEnvoyConfig, startEnvoy } from '../../demo/envoy';
import type { SagameshProcess } from '../../demo/stack';
import { freePort, spawnSagamesh } from '../../demo/stack';
import type { ChaosParticipants } from './participant';
import { createChaosParticipants } from './participant';
import type { ChaosPostgres } from './postgres';
import { createPostgres } from './postgres';
import type { DefinitionModel, ExitEvent, StoreKind } from './model';

/**
 * One chaos round's processes, all on loopback: the real Envoy (envoy/envoy.yaml, rendered with
 * free ports; with two sagamesh instances its `sagamesh` cluster gets a second endpoint), one or
 * two sagamesh processes built from dist/ (SQLite file, or a PostgreSQL server shared by two), and
 * the chaos participants on the hotel, flight, car and trips ports. Each process can be killed
 * with SIGKILL (PostgreSQL: an immediate shutdown) and started again on the same ports and data.
 * Any exit the round did not ask for is recorded with the tail of the process's output.
 */
export interface Topology {
  readonly ingressUrl: string;
  readonly adminUrls: readonly string[];
  readonly participants: ChaosParticipants;
  readonly instances: number;
  /** kill -9 of one sagamesh instance; resolves once it is gone. */
  killSagamesh(instance: number): Promise<void>;
  /** Starts an instance that is down; resolves once it reports ready. */
  startSagamesh(instance: number): Promise<void>;
  sagameshUp(instance: number): boolean;
  killEnvoy(): Promise<void>;
  startEnvoy(): Promise<void>;
  envoyUp(): boolean;
  /** PostgreSQL only. */
  crashPostgres(): Promise<void>;
  startPostgres(): Promise<void>;
  postgresUp(): boolean;
  unexpectedExits(): readonly ExitEvent[];
  stop(): Promise<void>;
}

export interface TopologyOptions {
  readonly store: StoreKind;
  readonly instances: number;
  readonly definitions: readonly DefinitionModel[];
  /** Logs, generated sagas and the SQLite file go here (PostgreSQL keeps its data in a temp directory). */
  readonly dir: string;
}

/** Adds sagamesh endpoints on `ports` to the rendered config's `sagamesh` cluster (first one kept). */
export function withSagameshEndpoints(configYaml: string, ports: readonly number[]): string {
  const config = YAML.parse(configYaml) as {
    static_resources: {
      clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: unknown[] }[] } }[];
    };
  };
  const cluster = config.static_resources.clusters.find((c) => c.name === 'sagamesh');
  const locality = cluster?.load_assignment.endpoints[0];
  if (!locality) throw new Error('envoy config: no sagamesh cluster endpoints');
  for (const port of ports) {
    locality.lb_endpoints.push({
      endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
    });
  }
  return YAML.stringify(config, { lineWidth: 0 });
}

/** Topologies started and not yet stopped: Ctrl-C stops them (main.ts), so a run leaves nothing behind. */
const live = new Set<Topology>();

export async function stopAllTopologies(): Promise<void> {
  for (const t of [...live]) await t.stop();
}

const tail = (lines: readonly string[], n = 40): string => lines.slice(-n).join('\n');

export async function startTopology(options: TopologyOptions): Promise<Topology> {
  const { dir, instances } = options;
  const exits: ExitEvent[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  let topology: Topology | undefined;
  const stopAll = async (): Promise<void> => {
    if (topology) live.delete(topology);
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };

  try {
    const sagasDir = path.join(dir, 'sagas');
    fs.mkdirSync(sagasDir, { recursive: true });
    for (const d of options.definitions) fs.writeFileSync(path.join(sagasDir, `${d.name}.yaml`), d.yaml);

    const ports: EnvoyPorts = {
      ingress: await freePort(),
      egress: await freePort(),
      admin: await freePort(),
      extProc: await freePort(),
      hotel: await freePort(),
      flight: await freePort(),
      car: await freePort(),
      trips: await freePort(),
    };
    const grpcPorts = [ports.extProc];
    for (let i = 1; i < instances; i++) grpcPorts.push(await freePort());
    const adminPorts: number[] = [];
    for (let i = 0; i < instances; i++) adminPorts.push(await freePort());

    const participants = createChaosParticipants();
    await participants.listen(ports);
    cleanups.push(() => participants.close());

    let postgres: ChaosPostgres | undefined;
    if (options.store === 'postgres') {
      const pg = createPostgres(await freePort(), (code, out) =>
        exits.push({ process: 'postgres', at: Date.now(), code, tail: out.slice(-4000) }),
      );
      postgres = pg;
      await pg.start();
      cleanups.push(() => pg.stop());
    }

    const storeUrl = postgres ? postgres.url : `sqlite:${path.join(dir, 'saga-log.db')}`;
    const processes: (SagameshProcess | undefined)[] = Array.from({ length: instances }, () => undefined);
    const expected = new Set<SagameshProcess>();
    const startSagamesh = async (i: number): Promise<void> => {
      if (processes[i]) return;
      const log = fs.createWriteStream(path.join(dir, `sagamesh-${i}.log`), { flags: 'a' });
      const { process: p, ready } = spawnSagamesh(
        {
          SAGAMESH_GRPC_ADDR: `127.0.0.1:${grpcPorts[i]}`,
          SAGAMESH_ADMIN_ADDR: `127.0.0.1:${adminPorts[i]}`,
          SAGAMESH_EGRESS_URL: `http://127.0.0.1:${ports.egress}`,
          SAGAMESH_SAGAS_DIR: sagasDir,
          SAGAMESH_STORE: storeUrl,
          SAGAMESH_LEASE_TTL_MS: '1500',
          SAGAMESH_LOG_LEVEL: 'info',
        },
        (line) => log.write(`${line}\n`),
      );
      processes[i] = p;
      void p.exited.then((code) => {
        log.end();
        if (!expected.has(p)) {
          exits.push({ process: `sagamesh-${i}`, at: Date.now(), code, tail: tail(p.lines()) });
          if (processes[i] === p) processes[i] = undefined;
        }
      });
      await ready;
    };
    const killSagamesh = async (i: number): Promise<void> => {
      const p = processes[i];
      if (!p) return;
      expected.add(p);
      processes[i] = undefined;
      await p.kill('SIGKILL');
    };
    for (let i = 0; i < instances; i++) await startSagamesh(i);
    cleanups.push(async () => {
      await Promise.all(
        processes.map(async (p) => {
          if (!p) return;
          expected.add(p);
          await p.stop();
        }),
      );
    });

    let configYaml = renderEnvoyConfig(ports, { accessLogPath: path.join(dir, 'envoy-access.log') });
    if (instances > 1) configYaml = withSagameshEndpoints(configYaml, grpcPorts.slice(1));
    let envoy: EnvoyProcess | undefined;
    let envoyExpectedDown = false;
    const envoyLog = path.join(dir, 'envoy.log');
    const startEnvoyProcess = async (): Promise<void> => {
      if (envoy) return;
      envoy = await startEnvoy({ configYaml, adminPort: ports.admin });
      envoyExpectedDown = false;
    };
    const killEnvoy = async (): Promise<void> => {
      const e = envoy;
      if (!e) return;
      envoyExpectedDown = true;
      envoy = undefined;
      process.kill(e.pid, 'SIGKILL');
      await e.stop(); // waits for the exit, removes its run directory
      fs.appendFileSync(envoyLog, e.logs());
    };
    await startEnvoyProcess();
    // Envoy offers no exit promise: a process that vanished without our kill is an unexpected exit.
    const watch = setInterval(() => {
      const e = envoy;
      if (!e || envoyExpectedDown) return;
      try {
        process.kill(e.pid, 0);
      } catch {
        envoy = undefined;
        exits.push({ process: 'envoy', at: Date.now(), code: null, tail: e.logs().slice(-4000) });
      }
    }, 500);
    cleanups.push(async () => {
      clearInterval(watch);
      const e = envoy;
      envoy = undefined;
      envoyExpectedDown = true;
      if (e) {
        await e.stop();
        fs.appendFileSync(envoyLog, e.logs());
      }
    });

    topology = {
      ingressUrl: `http://127.0.0.1:${ports.ingress}`,
      adminUrls: adminPorts.map((p) => `http://127.0.0.1:${p}`),
      participants,
      instances,
      killSagamesh,
      startSagamesh,
      sagameshUp: (i) => processes[i] !== undefined,
      killEnvoy,
      startEnvoy: startEnvoyProcess,
      envoyUp: () => envoy !== undefined,
      crashPostgres: async () => postgres?.crash(),
      startPostgres: async () => {
        if (postgres && !postgres.running()) await postgres.start();
      },
      postgresUp: () => postgres?.running() ?? true,
      unexpectedExits: () => exits,
      stop: stopAll,
    };
    live.add(topology);
    return topology;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
