import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { postgresBinDir, postgresUser } from '../scripts/local-postgres';
import { EtcdClient } from '../src/saga-log/etcd-client';
import { REPO_ROOT } from './layout';
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

/**
 * A 3-member etcd (sagamesh's etcd log) on loopback, its data in the run directory: the etcd that
 * scripts/ci/install-etcd.sh builds (tools/etcd-member, etcd's embed package at the version pinned
 * in its go.mod), with etcd's defaults. The three members share the machine's cores with everything
 * else, as the other stores do.
 */
export async function startEtcd(runDir: string): Promise<{ members: StoreServer[]; url: string }> {
  const bin = path.join(REPO_ROOT, '.tools', 'etcd-member', 'etcd-member');
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run bash scripts/ci/install-etcd.sh`);
  const goMod = fs.readFileSync(path.join(REPO_ROOT, 'tools', 'etcd-member', 'go.mod'), 'utf8');
  const version = /go\.etcd\.io\/etcd\/server\/v3 v(\S+)/.exec(goMod)?.[1] ?? 'unknown';
  const specs: { name: string; client: number; peer: number }[] = [];
  for (let i = 0; i < 3; i++)
    specs.push({ name: `etcd-${i}`, client: await freePort(), peer: await freePort() });
  const cluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const members = specs.map((s) => {
    const child = spawnLogged(
      s.name,
      bin,
      [
        `--name=${s.name}`,
        `--data-dir=${path.join(runDir, s.name)}`,
        `--listen-client-urls=http://127.0.0.1:${s.client}`,
        `--listen-peer-urls=http://127.0.0.1:${s.peer}`,
        `--initial-cluster=${cluster}`,
      ],
      path.join(runDir, `${s.name}.log`),
    );
    return { name: s.name, port: s.client, version, child };
  });
  for (const m of members) await waitFor(m.child, () => canConnect(m.port));
  // Serving once they have elected a leader.
  const client = new EtcdClient({
    endpoints: members.map((m) => `127.0.0.1:${m.port}`),
    callTimeoutMs: 2000,
  });
  const first = members[0];
  if (!first) throw new Error('etcd: no member started');
  try {
    await waitFor(first.child, () =>
      client.status(`127.0.0.1:${members[0]?.port ?? 0}`).then(
        (s) => s.leader !== '0',
        () => false,
      ),
    );
  } finally {
    client.close();
  }
  return { members, url: `etcd://${members.map((m) => `127.0.0.1:${m.port}`).join(',')}?prefix=/bench/` };
}
