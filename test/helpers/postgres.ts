import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort } from '../../demo/stack';
import { postgresBinDir, postgresUser } from '../../scripts/local-postgres';

/**
 * A throwaway PostgreSQL cluster for tests: initdb into a temp dir, `postgres` on a free loopback
 * port, trust auth. Binaries come from PG_BIN or the Debian package (scripts/ci/install-postgres.sh
 * installs it in CI). When run as root, the server runs as the `postgres` user, as it insists.
 */
export interface TestPostgres {
  readonly port: number;
  /** Creates a fresh database and returns its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const port = await freePort();
  const server = createPostgresServer(port);
  await server.start();
  const url = (db: string): string => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let n = 0;
  return {
    port,
    async createDatabase() {
      const name = `sagamesh_test_${process.pid}_${++n}`;
      const client = new Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    stop: () => server.stop(),
  };
}

/**
 * A throwaway PostgreSQL server that can crash and come back on the same data (the chaos suite's
 * PostgreSQL restarts): initdb into a temp directory, trust auth, loopback, run as `postgres` when
 * we are root. `crash()` is an immediate shutdown (SIGQUIT to the postmaster: every backend dies
 * at once, no checkpoint — the next start replays the WAL, as after a crash), `start()` brings it
 * back on the same port, and an exit nobody asked for is reported to `onUnexpectedExit`.
 */
export interface PostgresServer {
  readonly url: string;
  /** Resolves once the server takes connections. */
  start(): Promise<void>;
  /** Immediate shutdown; resolves once the server is gone. */
  crash(): Promise<void>;
  running(): boolean;
  /** Fast shutdown, then the data directory is removed. */
  stop(): Promise<void>;
}

export function createPostgresServer(
  port: number,
  onUnexpectedExit: (code: number | null, tail: string) => void = () => undefined,
): PostgresServer {
  const bin = postgresBinDir('run scripts/ci/install-postgres.sh or set PG_BIN');
  const user = postgresUser();
  // A directory of its own: the `postgres` user must reach it, whatever the run directory's modes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-pg-'));
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  if (user) {
    fs.chownSync(dir, user.uid, user.gid);
    fs.chownSync(data, user.uid, user.gid);
  }
  execFileSync(
    path.join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
    {
      ...(user ?? {}),
      stdio: 'pipe',
    },
  );
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let expectingExit = false;
  let stderr = '';

  const start = async (): Promise<void> => {
    expectingExit = false;
    stderr = '';
    const child = spawn(
      path.join(bin, 'postgres'),
      [
        '-D',
        data,
        '-p',
        String(port),
        '-k',
        dir,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'max_connections=200',
      ],
      { ...(user ?? {}), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    server = child;
    child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8000)));
    exited = new Promise<void>((resolve) =>
      child.on('exit', (code) => {
        if (!expectingExit) onUnexpectedExit(code, stderr);
        resolve();
      }),
    );
    for (let i = 0; ; i++) {
      const client = new Client({ connectionString: url });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
        if (child.exitCode !== null || i > 300) throw new Error(`postgres did not start:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    expectingExit = true;
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  return {
    url,
    start,
    crash: () => signal('SIGQUIT'),
    running: () => server !== undefined && server.exitCode === null && server.signalCode === null,
    async stop() {
      await signal('SIGINT');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
