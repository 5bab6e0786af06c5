import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { postgresBinDir, postgresUser } from '../scripts/local-postgres';
import type { Child } from './processes';
import { canConnect, freePort, spawnLogged, waitFor } from './processes';

/**
 * The bench's own Redis (DTM's Redis store) and PostgreSQL (sagamesh's PostgreSQL log) from the
 * Debian packages bench/setup.sh installs: started on loopback with their data in the run
 * directory, stopped with everything else at the end of the run. Both run with their packaged
 * defaults — nothing is tuned for the bench.
 */
export interface StoreServer {
  readonly name: string;
  readonly port: number;
  readonly version: string;
  readonly child: Child;
}

export async function startRedis(runDir: string): Promise<StoreServer> {
  const dir = path.join(runDir, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = spawnLogged(
    'redis',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no'],
    path.join(runDir, 'redis.log'),
  );
  await waitFor(child, () => canConnect(port));
  const version = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  return { name: 'redis', port, version: /v=(\S+)/.exec(version)?.[1] ?? version, child };
}

/**
 * A throwaway cluster in the run directory, as the `postgres` user when the bench runs as root
 * (scripts/local-postgres.ts). Trust auth on loopback only; the URL is
 * postgres://postgres@127.0.0.1:<port>/postgres.
 */
export async function startPostgres(runDir: string): Promise<StoreServer & { url: string }> {
  const bin = postgresBinDir('run bench/setup.sh or set PG_BIN');
  const user = postgresUser();
  const dir = path.join(runDir, 'postgres');
  fs.mkdirSync(dir, { recursive: true });
  if (user) fs.chownSync(dir, user.uid, user.gid);
  execFileSync(path.join(bin, 'initdb'), ['-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8'], {
    ...(user ?? {}),
    stdio: 'ignore',
  });
  const port = await freePort();
  const child = spawnLogged(
    'postgres',
    path.join(bin, 'postgres'),
    ['-D', dir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1'],
    path.join(runDir, 'postgres.log'),
    user ?? {},
  );
  await waitFor(child, () => canConnect(port));
  const version = execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  return {
    name: 'postgres',
    port,
    version: /(\d+\.\d+)/.exec(version)?.[1] ?? version,
    child,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
  };
}
