import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { probeCpu } from './cpu';

/**
 * Child processes of a bench run. Every server the bench starts is registered here and stopped in
 * reverse order at the end of the run — also on Ctrl-C, SIGTERM or an error — so a run leaves
 * nothing behind. Each child writes its stdout/stderr to its own log file in the run directory.
 */
export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  running(): boolean;
  /** SIGTERM (or `signal`), SIGKILL after `graceMs`; resolves once it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

interface Stoppable {
  readonly name: string;
  stop(): Promise<void>;
}

const registry: Stoppable[] = [];

export function onCleanup(name: string, stop: () => Promise<void>): void {
  registry.push({ name, stop });
}

/** Stops everything registered, newest first; never throws. */
export async function cleanupAll(): Promise<void> {
  while (registry.length > 0) {
    const item = registry.pop();
    if (!item) break;
    try {
      await item.stop();
    } catch (err) {
      process.stderr.write(`bench: stopping ${item.name} failed: ${String(err)}\n`);
    }
  }
}

let handlersInstalled = false;
/** Ctrl-C / SIGTERM: stop every child, then exit 130/143. */
export function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping everything…\n`);
      void cleanupAll().finally(() => process.exit(code));
    });
  }
}

export function spawnLogged(
  name: string,
  command: string,
  args: readonly string[],
  logFile: string,
  options: SpawnOptions = {},
): Child {
  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { ...options, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> =>
    (stopping ??= (async () => {
      if (!running()) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    })());
  const handle: Child = { name, pid: child.pid ?? -1, logFile, process: child, exited, running, stop };
  onCleanup(name, () => stop());
  probeCpu(name, handle.pid);
  return handle;
}

export function readTail(file: string, bytes = 4000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

export function httpPost(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Waits until `ready()` is true. Rejects with the child's log tail if it exits first or the time
 * runs out.
 */
export async function waitFor(
  child: Child,
  ready: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!child.running()) {
      throw new Error(`${child.name} exited before it was ready:\n${readTail(child.logFile)}`);
    }
    if (await ready()) return;
    if (Date.now() > deadline) {
      throw new Error(`${child.name} not ready after ${timeoutMs} ms:\n${readTail(child.logFile)}`);
    }
    await sleep(50);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resident set size now and its peak (VmRSS / VmHWM from /proc/<pid>/status), in bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
}

/** Whether a process with this pid still exists (signal 0 probes without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
