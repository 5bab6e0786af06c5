import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { tool, toolVersion } from '../layout';
import { freePort, httpGet, spawnLogged, waitFor } from '../processes';
import { sagaRequest } from '../topology';
import type { SagaSpec, System } from './system';
import { failsAt } from './system';

/**
 * DTM v1.19.0, the closest peer: a central coordinator with its own store. The same saga is
 * submitted to DTM's HTTP API as a concurrent saga (custom_data `{"orders":{},"concurrent":true}`:
 * every branch at once, like the flat topologies) with `wait_result: true`, so the client's answer
 * comes when the saga has finished, as with sagamesh. DTM then calls each branch's action, and on a
 * failure the compensations, through the same Envoy egress (path prefix /pN/, see
 * envoy-config.ts) on the same participants, which answer DTM's status contract (200 / 409).
 * DTM runs with its defaults except the store and the ports.
 */
export type DtmStore = 'boltdb' | 'redis';

export interface DtmOptions {
  readonly runDir: string;
  readonly store: DtmStore;
  readonly egressUrl: string;
  readonly redisPort?: number;
}

export function dtmVersion(): string {
  try {
    const out = execFileSync(tool('dtm'), ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return /dtm version: (\S+)/.exec(out)?.[1] ?? toolVersion('dtm');
  } catch {
    return toolVersion('dtm');
  }
}

export async function startDtm(options: DtmOptions): Promise<System> {
  const dir = path.join(options.runDir, `dtm-${options.store}`);
  fs.mkdirSync(dir, { recursive: true });
  const httpPort = await freePort();
  const store =
    options.store === 'redis'
      ? { Driver: 'redis', Host: '127.0.0.1', Port: options.redisPort, User: '', Password: '' }
      : { Driver: 'boltdb' };
  const conf = {
    Store: store,
    HttpPort: httpPort,
    GrpcPort: await freePort(),
    JsonRpcPort: await freePort(),
  };
  const confFile = path.join(dir, 'conf.yml');
  fs.writeFileSync(confFile, YAML.stringify(conf));
  const child = spawnLogged(
    `dtm-${options.store}`,
    tool('dtm'),
    ['-c', confFile],
    path.join(options.runDir, `dtm-${options.store}.log`),
    { cwd: dir }, // BoltDB writes ./dtm.bolt
  );
  const api = `http://127.0.0.1:${httpPort}/api/dtmsvr`;
  await waitFor(child, async () => (await httpGet(`${api}/version`)).status === 200, 30_000);

  const runTag = `${options.store}-${Date.now().toString(36)}`;
  let seq = 0;
  return {
    id: `dtm-${options.store}`,
    label: `DTM ${dtmVersion()}, ${options.store === 'boltdb' ? 'BoltDB' : 'Redis'} store`,
    available: true,
    pid: child.pid,
    targets: (spec: SagaSpec) => {
      const names = spec.topology.participants;
      const steps = names.map((p) => ({
        action: `${options.egressUrl}/${p}/dtm/action`,
        compensate: `${options.egressUrl}/${p}/dtm/compensate`,
      }));
      const payloads = (fail: boolean): string[] => {
        const req = sagaRequest(spec.topology, spec.latencyMs, fail);
        return names.map((p) => JSON.stringify(req[p]));
      };
      const ok = payloads(false);
      const failing = payloads(true);
      const customData = JSON.stringify({ orders: {}, concurrent: spec.shape === 'flat' });
      let i = 0;
      return () => {
        const fail = failsAt(i++, spec.failEvery);
        const body = {
          gid: `${runTag}-${++seq}`,
          trans_type: 'saga',
          steps,
          payloads: fail ? failing : ok,
          custom_data: customData,
          wait_result: true,
        };
        return {
          method: 'POST',
          url: `${api}/submit`,
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
        };
      };
    },
  };
}
