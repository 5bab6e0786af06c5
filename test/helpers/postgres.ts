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
  const bin = postgresBinDir('run scripts/ci/install-postgres.sh or set PG_BIN');
  const user = postgresUser();
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
  const port = await freePort();
  const server: ChildProcess = spawn(
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
  let stderr = '';
  server.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => server.on('exit', () => resolve()));
  const url = (db: string): string => `postgres://postgres@127.0.0.1:${port}/${db}`;

  for (let i = 0; ; i++) {
    const client = new Client({ connectionString: url('postgres') });
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => undefined);
      if (server.exitCode !== null || i > 150) {
        server.kill('SIGKILL');
        throw new Error(`postgres did not start:\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

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
    async stop() {
      if (server.exitCode === null) {
        server.kill('SIGINT'); // fast shutdown
        const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
