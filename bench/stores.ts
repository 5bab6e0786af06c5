import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { postgresBinDir } from '../scripts/postgres-bin';
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
 * PostgreSQL refuses to run as root: the cluster belongs to the Debian package's `postgres` user
 * and runs through setpriv (which execs, so signals reach postgres itself). Trust auth on
 * loopback only; the URL is postgres://postgres@127.0.0.1:<port>/postgres.
 */
export async function startPostgres(runDir: string): Promise<StoreServer & { url: string }> {
  const bin = postgresBinDir('run bench/setup.sh or set PG_BIN');
  const dir = path.join(runDir, 'postgres');
  fs.mkdirSync(dir, { recursive: true });
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  fs.chownSync(dir, uid, gid);
  const asPostgres = ['--reuid=postgres', '--regid=postgres', '--init-groups'];
  execFileSync(
    'setpriv',
    [...asPostgres, path.join(bin, 'initdb'), '-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8'],
    { stdio: 'ignore' },
  );
  const port = await freePort();
  const logFile = path.join(runDir, 'postgres.log');
  fs.writeFileSync(logFile, '');
  fs.chownSync(logFile, uid, gid);
  const child = spawnLogged(
    'postgres',
    'setpriv',
    [
      ...asPostgres,
      path.join(bin, 'postgres'),
      '-D',
      dir,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
    ],
    logFile,
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
