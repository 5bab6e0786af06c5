import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, REPO_ROOT } from '../../demo/stack';
import type { EtcdClientOptions } from '../../src/saga-log/etcd-client';
import { EtcdClient } from '../../src/saga-log/etcd-client';

/**
 * A throwaway etcd cluster for tests: `size` members of .tools/etcd-member/etcd-member (etcd's own
 * server, built by scripts/ci/install-etcd.sh) on loopback, free ports, data in a temp directory.
 * `kill` (SIGKILL), `pause`/`resume` (SIGSTOP/SIGCONT) one member; `leader()` finds the leader.
 * `stop()` kills everything it started and removes the data.
 */
export const ETCD_MEMBER = path.join(REPO_ROOT, '.tools', 'etcd-member', 'etcd-member');

export interface EtcdMemberHandle {
  readonly name: string;
  /** host:port of its client URL. */
  readonly endpoint: string;
  readonly dataDir: string;
  running(): boolean;
}

export interface TestEtcd {
  readonly members: readonly EtcdMemberHandle[];
  /** host:port,host:port,… */
  readonly endpoints: string;
  /** SAGAMESH_STORE for this cluster, each with its own prefix when `prefix` is given. */
  storeUrl(prefix?: string): string;
  /** The member that leads now (asks each running member until they agree). */
  leader(): Promise<EtcdMemberHandle>;
  /** SIGKILL; resolves once it has exited. */
  kill(member: EtcdMemberHandle): Promise<void>;
  pause(member: EtcdMemberHandle): void;
  resume(member: EtcdMemberHandle): void;
  stop(): Promise<void>;
}

interface Running {
  readonly handle: EtcdMemberHandle;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  output: string;
}

export async function startEtcd(
  opts: {
    readonly size?: number;
    /** Flags for every member (TLS: --cert-file, --key-file, --trusted-ca-file). */
    readonly extraArgs?: readonly string[];
    /** Flags for the first member only (--bootstrap-root-password). */
    readonly firstMemberArgs?: readonly string[];
    /** TLS and credentials for the helper's own calls (finding the leader). */
    readonly tls?: EtcdClientOptions['tls'];
    readonly auth?: EtcdClientOptions['auth'];
  } = {},
): Promise<TestEtcd> {
  if (!fs.existsSync(ETCD_MEMBER))
    throw new Error(`${ETCD_MEMBER} is missing: run bash scripts/ci/install-etcd.sh`);
  const size = opts.size ?? 3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-etcd-'));
  const specs: { name: string; client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++)
    specs.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  const cluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const scheme = opts.extraArgs?.some((a) => a.startsWith('--cert-file')) ? 'https' : 'http';
  const running: Running[] = specs.map((s, i) => {
    const dataDir = path.join(dir, s.name);
    const child = spawn(
      ETCD_MEMBER,
      [
        `--name=${s.name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${scheme}://127.0.0.1:${s.client}`,
        `--listen-peer-urls=http://127.0.0.1:${s.peer}`,
        `--initial-cluster=${cluster}`,
        ...(opts.extraArgs ?? []),
        ...(i === 0 ? (opts.firstMemberArgs ?? []) : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const r: Running = {
      handle: {
        name: s.name,
        endpoint: `127.0.0.1:${s.client}`,
        dataDir,
        running: () => child.exitCode === null && child.signalCode === null,
      },
      child,
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
      output: '',
    };
    child.stderr?.on('data', (c: Buffer) => (r.output = (r.output + c.toString()).slice(-8000)));
    return r;
  });
  const byHandle = (m: EtcdMemberHandle): Running => {
    const r = running.find((x) => x.handle === m);
    if (!r) throw new Error(`not a member of this cluster: ${m.name}`);
    return r;
  };
  const endpoints = running.map((r) => r.handle.endpoint).join(',');

  const stop = async (): Promise<void> => {
    for (const r of running) {
      if (!r.handle.running()) continue;
      r.child.kill('SIGCONT');
      r.child.kill('SIGKILL');
    }
    await Promise.all(running.map((r) => r.exited));
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const leader = async (): Promise<EtcdMemberHandle> => {
    for (let i = 0; i < 200; i++) {
      const ids = new Map<string, EtcdMemberHandle>();
      const leaders = new Set<string>();
      for (const r of running.filter((x) => x.handle.running())) {
        const client = new EtcdClient({
          endpoints: [r.handle.endpoint],
          callTimeoutMs: 1000,
          tls: opts.tls,
          auth: opts.auth,
        });
        try {
          const s = await client.status(r.handle.endpoint);
          ids.set(s.header.member_id, r.handle);
          if (s.leader !== '0') leaders.add(s.leader);
        } catch {
          // not serving (yet): ask again
        } finally {
          client.close();
        }
      }
      const [only] = [...leaders];
      const found = leaders.size === 1 && only !== undefined ? ids.get(only) : undefined;
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('etcd: no leader after 20 s');
  };

  try {
    await Promise.race([
      leader(),
      ...running.map((r) =>
        r.exited.then(() => {
          throw new Error(`etcd member ${r.handle.name} exited at start:\n${r.output}`);
        }),
      ),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    members: running.map((r) => r.handle),
    endpoints,
    storeUrl: (prefix) => `etcd://${endpoints}${prefix ? `?prefix=${encodeURIComponent(prefix)}` : ''}`,
    leader,
    async kill(m) {
      const r = byHandle(m);
      r.child.kill('SIGKILL');
      await r.exited;
    },
    pause: (m) => void byHandle(m).child.kill('SIGSTOP'),
    resume: (m) => void byHandle(m).child.kill('SIGCONT'),
    stop,
  };
}
