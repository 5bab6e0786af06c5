import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { App } from './app';
import { createApp } from './app';
import type { EnvoyPorts, EnvoyProcess } from './envoy';
import { DEFAULT_ENVOY_PORTS, renderEnvoyConfig, startEnvoy } from './envoy';
import type { Participant } from './participant';
import { createParticipant } from './participant';

/**
 * The process twin of docker-compose.yml: Envoy (the checked-in envoy/envoy.yaml), sagamesh (its
 * built entry point, as a child process) and the demo services (hotel, flight, car, trips), all
 * on loopback. `npm start` runs it on the default ports; integration tests run it on free ports.
 */

export const REPO_ROOT = path.resolve(
  __dirname,
  '..',
  __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '',
);
/** The built `sagamesh` executable (package.json `bin`); the stack runs `sagamesh serve`, as `npm start` does. */
export const SAGAMESH_ENTRY = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'index.js');

/** Envoy's ports and the services', plus sagamesh's admin HTTP port (health, metrics, sagas API, UI). */
export type StackPorts = EnvoyPorts & { sagameshAdmin: number };

const DEFAULT_STACK_PORTS: StackPorts = Object.freeze({ ...DEFAULT_ENVOY_PORTS, sagameshAdmin: 9090 });

export interface StackOptions {
  /** Ports to use; `'free'` picks a free port for every service (tests). Default: the defaults. */
  readonly ports?: Partial<StackPorts> | 'free';
  readonly sagasDir?: string;
  /** Extra SAGAMESH_* environment for the sagamesh process. */
  readonly env?: Readonly<Record<string, string>>;
  readonly accessLogPath?: string;
  /** The Envoy bootstrap to run; default: envoy/envoy.yaml with these ports (renderEnvoyConfig). */
  readonly envoyConfig?: (ports: StackPorts) => string;
  /** Passes sagamesh's and the services' log lines on as they come. */
  readonly onLog?: (source: string, line: string) => void;
}

export interface SagameshProcess {
  readonly pid: number;
  /** Every line sagamesh wrote to stdout/stderr so far. */
  lines(): string[];
  /** SIGTERM, SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Sends `signal` (e.g. SIGKILL: a crash) and resolves once the process is gone (null after a signal). */
  kill(signal: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

export interface Stack {
  readonly ports: StackPorts;
  readonly ingressUrl: string;
  readonly egressUrl: string;
  /** sagamesh's admin API and UI (`/ui`). */
  readonly adminUrl: string;
  readonly participants: {
    readonly hotel: Participant;
    readonly flight: Participant;
    readonly car: Participant;
  };
  readonly app: App;
  readonly envoy: EnvoyProcess;
  /** The current sagamesh process (a new one after restartSagamesh). */
  readonly sagamesh: SagameshProcess;
  /** The SQLite file of sagamesh's saga log, when the store is SQLite. */
  readonly storePath: string | undefined;
  /** Signals sagamesh (default SIGKILL: a crash) and resolves once it is gone. */
  killSagamesh(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * Starts sagamesh again with the same environment (plus `extraEnv`): same ports, same store.
   * Stops the running one first (SIGTERM) if it is still up; resolves once the new one is ready.
   */
  restartSagamesh(extraEnv?: Readonly<Record<string, string>>): Promise<SagameshProcess>;
  stop(): Promise<void>;
}

/**
 * A free loopback port for a service a test starts. Ports come from below Linux's ephemeral range
 * (32768–60999): a port picked there and released can be taken by any outgoing connection (Envoy's
 * upstreams, test clients) before the service binds it. Each jest worker gets its own slice, and a
 * process never hands out the same port twice. SAGAMESH_TEST_PORT_SLICE shifts the slices, so two
 * test runs on one machine (two checkouts) keep apart.
 */
const PORT_SLICE = 1500;
const sliceIndex =
  Number(process.env['SAGAMESH_TEST_PORT_SLICE'] ?? 0) + Number(process.env['JEST_WORKER_ID'] ?? 0);
const PORT_BASE = 20_000 + (sliceIndex % 8) * PORT_SLICE;
const handedOut = new Set<number>();
let portCursor = Math.floor(Math.random() * PORT_SLICE);

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < PORT_SLICE; i++) {
    const port = PORT_BASE + (portCursor++ % PORT_SLICE);
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${PORT_BASE}-${PORT_BASE + PORT_SLICE - 1}`);
}

async function resolvePorts(option: StackOptions['ports']): Promise<StackPorts> {
  if (option !== 'free') return { ...DEFAULT_STACK_PORTS, ...option };
  const keys = Object.keys(DEFAULT_STACK_PORTS) as (keyof StackPorts)[];
  const ports: Partial<StackPorts> = {};
  for (const key of keys) ports[key] = await freePort();
  return ports as StackPorts;
}

/**
 * Starts sagamesh from its build output and resolves once it reports ready; rejects with its
 * output if it exits first. Used directly by tests that expect startup to fail.
 */
export function spawnSagamesh(
  env: Readonly<Record<string, string>>,
  onLine?: (line: string) => void,
): {
  process: SagameshProcess;
  ready: Promise<void>;
} {
  const child: ChildProcess = spawn(process.execPath, [SAGAMESH_ENTRY, 'serve'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let onReady: () => void = () => undefined;
  let onExitEarly: (err: Error) => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onExitEarly = reject;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let isReady = false;
  const take = (chunk: Buffer, buffer: { rest: string }): void => {
    const text = buffer.rest + chunk.toString('utf8');
    const parts = text.split('\n');
    buffer.rest = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      onLine?.(line);
      if (!isReady && line.includes('"sagamesh ready"')) {
        isReady = true;
        onReady();
      }
    }
  };
  const out = { rest: '' };
  const err = { rest: '' };
  child.stdout?.on('data', (c: Buffer) => take(c, out));
  child.stderr?.on('data', (c: Buffer) => take(c, err));
  void exited.then((code) => {
    for (const rest of [out.rest, err.rest]) if (rest) lines.push(rest);
    if (!isReady) onExitEarly(new Error(`sagamesh exited with ${code}:\n${lines.join('\n')}`));
  });
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const kill = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return { process: { pid: child.pid ?? -1, lines: () => [...lines], stop, kill, exited }, ready };
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const ports = await resolvePorts(options.ports);
  const log = options.onLog;
  const started: { stop: () => Promise<unknown> }[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    started.length = 0;
  };
  try {
    const hotel = createParticipant('hotel', log ? { logger: (l) => log('hotel', l) } : {});
    const flight = createParticipant('flight', log ? { logger: (l) => log('flight', l) } : {});
    const car = createParticipant('car', log ? { logger: (l) => log('car', l) } : {});
    const app = createApp(log ? { logger: (l) => log('trips', l) } : {});
    for (const [service, port] of [
      [hotel, ports.hotel],
      [flight, ports.flight],
      [car, ports.car],
      [app, ports.trips],
    ] as const) {
      await service.listen(port);
      started.push({ stop: () => service.close() });
    }

    // Tests (free ports) each get their own SQLite file; the demo uses the default ./data/sagamesh.db.
    const store: Record<string, string> =
      options.ports === 'free'
        ? {
            SAGAMESH_STORE: `sqlite:${path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-store-')), 'sagamesh.db')}`,
          }
        : {};
    const sagameshEnv: Record<string, string> = {
      ...store,
      SAGAMESH_GRPC_ADDR: `127.0.0.1:${ports.extProc}`,
      SAGAMESH_ADMIN_ADDR: `127.0.0.1:${ports.sagameshAdmin}`,
      SAGAMESH_EGRESS_URL: `http://127.0.0.1:${ports.egress}`,
      SAGAMESH_SAGAS_DIR: options.sagasDir ?? path.join(REPO_ROOT, 'sagas'),
      ...options.env,
    };
    const storeUrl = sagameshEnv['SAGAMESH_STORE'] ?? 'sqlite:./data/sagamesh.db';
    const storePath = storeUrl.startsWith('sqlite:')
      ? path.resolve(REPO_ROOT, storeUrl.slice('sqlite:'.length).split('?')[0] ?? '')
      : undefined;
    const launch = (extraEnv: Readonly<Record<string, string>> = {}) =>
      spawnSagamesh({ ...sagameshEnv, ...extraEnv }, log ? (l) => log('sagamesh', l) : undefined);
    let { process: sagamesh, ready } = launch();
    started.push({ stop: () => sagamesh.stop() });
    await ready;

    const envoy = await startEnvoy({
      configYaml: options.envoyConfig
        ? options.envoyConfig(ports)
        : renderEnvoyConfig(ports, options.accessLogPath ? { accessLogPath: options.accessLogPath } : {}),
      adminPort: ports.admin,
    });
    started.push({ stop: () => envoy.stop() });

    return {
      ports,
      ingressUrl: `http://127.0.0.1:${ports.ingress}`,
      adminUrl: `http://127.0.0.1:${ports.sagameshAdmin}`,
      egressUrl: `http://127.0.0.1:${ports.egress}`,
      participants: { hotel, flight, car },
      app,
      envoy,
      get sagamesh() {
        return sagamesh;
      },
      storePath,
      killSagamesh: (signal = 'SIGKILL') => sagamesh.kill(signal),
      async restartSagamesh(extraEnv = {}) {
        await sagamesh.stop();
        ({ process: sagamesh, ready } = launch(extraEnv));
        await ready;
        return sagamesh;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
