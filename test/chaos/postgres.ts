import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { postgresBinDir, postgresUser } from '../../scripts/local-postgres';

/**
 * A throwaway PostgreSQL server for a chaos round that can crash and come back on the same data:
 * `crash()` is an immediate shutdown (SIGQUIT to the postmaster: every backend dies at once, no
 * checkpoint — the next start replays the WAL, as after a crash), `start()` brings it back on the
 * same port. Like test/helpers/postgres.ts (initdb into a temp directory, trust auth, loopback,
 * run as `postgres` when we are root), plus the restart and an exit the run did not ask for.
 */
export interface ChaosPostgres {
  readonly url: string;
  /** Resolves once the server takes connections. */
  start(): Promise<void>;
  /** Immediate shutdown; resolves once the server is gone. */
  crash(): Promise<void>;
  running(): boolean;
  /** Fast shutdown, then the data directory is removed. */
  stop(): Promise<void>;
}

export function createPostgres(
  port: number,
  onUnexpectedExit: (code: number | null, tail: string) => void,
): ChaosPostgres {
  const bin = postgresBinDir('run scripts/ci/install-postgres.sh or set PG_BIN');
  const user = postgresUser();
  // A directory of its own: the `postgres` user must reach it, whatever the run directory's modes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-chaos-pg-'));
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  if (user) {
    fs.chownSync(dir, user.uid, user.gid);
    fs.chownSync(data, user.uid, user.gid);
  }
  execFileSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8'], {
    ...(user ?? {}),
    stdio: 'pipe',
  });
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
