import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import type { StackPorts } from '../../demo/stack';
import { REPO_ROOT } from '../../demo/stack';
import { renderEnvoyConfig } from '../../demo/envoy';
import { EtcdClient, prefixEnd } from '../../src/saga-log/etcd-client';
import { parseRecord } from '../../src/saga-log/rows';
import type { SagaRecord } from '../../src/runtime/journal';
import type { TestEtcd } from './etcd';

/** What the etcd store tests (test/integration/store-etcd*.test.ts) share. */

/** Polls `fn` until `ok`; fails with what it saw last. */
export async function until<T>(
  what: string,
  fn: () => T | Promise<T>,
  ok: (v: T) => boolean,
  ms = 45_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** envoy/envoy.yaml with a second sagamesh replica (127.0.0.1:`second`) in its ext_proc cluster. */
export function twoReplicaEnvoy(second: number): (ports: StackPorts) => string {
  return (ports) => {
    const config = YAML.parse(renderEnvoyConfig(ports)) as {
      static_resources: {
        clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: unknown[] }[] } }[];
      };
    };
    const cluster = config.static_resources.clusters.find((c) => c.name === 'sagamesh');
    const endpoints = cluster?.load_assignment.endpoints[0]?.lb_endpoints;
    if (!endpoints) throw new Error('envoy.yaml: no sagamesh cluster');
    endpoints.push({
      endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: second } } },
    });
    return YAML.stringify(config);
  };
}

/** A directory of one instance's own (its definitions): the pod's local disk, deleted with it. */
export function localDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-pod-'));
  fs.cpSync(path.join(REPO_ROOT, 'sagas'), path.join(dir, 'sagas'), { recursive: true });
  return dir;
}

/** Every record in the saga log under `prefix`, read straight from etcd. */
export async function etcdRecords(etcd: TestEtcd, prefix: string): Promise<SagaRecord[]> {
  const client = new EtcdClient({ endpoints: etcd.endpoints.split(','), callTimeoutMs: 5000 });
  try {
    const events = `${prefix}events/`;
    const r = await client.range({ key: events, range_end: prefixEnd(events) });
    return r.kvs.map((kv) => parseRecord(kv.value.toString()));
  } finally {
    client.close();
  }
}

/** The sagas' last status in the log, by saga id. */
export function statuses(records: readonly SagaRecord[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of records) {
    if (r.type === 'saga.started') out.set(r.sagaId, 'running');
    if (r.type === 'saga.compensating') out.set(r.sagaId, 'compensating');
    if (r.type === 'saga.finished') out.set(r.sagaId, r.status);
  }
  return out;
}

/**
 * An HTTP proxy in front of Envoy's egress for one instance: it records when each request it
 * forwards arrived, so a test can say what that instance sent after a given moment.
 */
export interface RecordingProxy {
  readonly url: string;
  /** Where requests go (Envoy's egress), known once the stack is up. */
  target: string;
  /** Arrival times (Date.now()) and saga ids of the requests forwarded so far. */
  sent(): readonly { readonly at: number; readonly sagaId: string | undefined; readonly method: string }[];
  close(): Promise<void>;
}

export async function recordingProxy(port: number): Promise<RecordingProxy> {
  const sent: { at: number; sagaId: string | undefined; method: string }[] = [];
  const server = http.createServer((req, res) => {
    const to = new URL(proxy.target);
    const sagaId = req.headers['x-sagamesh-saga-id'];
    sent.push({
      at: Date.now(),
      sagaId: typeof sagaId === 'string' ? sagaId : undefined,
      method: req.method ?? '',
    });
    const upstream = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const proxy: RecordingProxy = {
    url: `http://127.0.0.1:${port}`,
    target: 'http://127.0.0.1:1',
    sent: () => [...sent],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return proxy;
}

/** A trip whose flight answers after `flightMs`: the sagas are mid-way for that long. */
export function slowTrip(i: number, flightMs: number): string {
  return JSON.stringify({
    guest: `guest-${i}`,
    hotel: { nights: 1 },
    flight: { to: 'LIS', fault: `slow:${flightMs}` },
    car: { class: 'mini' },
  });
}
