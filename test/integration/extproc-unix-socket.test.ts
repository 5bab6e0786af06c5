/**
 * The ext_proc port as a unix socket (SAGAMESH_GRPC_ADDR=unix:/path) instead of TCP: nothing on the
 * pod network can reach it, only who can write the socket file (0660). The real Envoy with
 * envoy/envoy.yaml, its `sagamesh` cluster pointed at the socket (`pipe`), runs the demo saga, and
 * after a kill -9 the restarted sagamesh takes the socket over again (the dead one's file stays).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { renderEnvoyConfig } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { postJson, trip } from '../helpers/trip-client';

jest.setTimeout(60_000);

let stack: Stack;
let dir: string;

interface Cluster {
  name: string;
  load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: unknown } }[] }[] };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-uds-'));
  const socket = path.join(dir, 'extproc.sock');
  stack = await startStack({
    ports: 'free',
    env: { SAGAMESH_GRPC_ADDR: `unix:${socket}` },
    envoyConfig: (ports) => {
      const config = YAML.parse(renderEnvoyConfig(ports)) as { static_resources: { clusters: Cluster[] } };
      const cluster = config.static_resources.clusters.find((c) => c.name === 'sagamesh');
      if (!cluster) throw new Error('envoy/envoy.yaml has no sagamesh cluster');
      for (const locality of cluster.load_assignment.endpoints)
        for (const lb of locality.lb_endpoints) lb.endpoint.address = { pipe: { path: socket } };
      return YAML.stringify(config);
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('sagas run over the unix socket, also after a kill -9 and a restart', async () => {
  expect((await postJson(stack, '/trips', trip())).status).toBe(201);
  expect(fs.statSync(path.join(dir, 'extproc.sock')).mode & 0o777).toBe(0o660);

  await stack.killSagamesh('SIGKILL');
  expect(fs.lstatSync(path.join(dir, 'extproc.sock')).isSocket()).toBe(true);
  await stack.restartSagamesh();
  expect((await postJson(stack, '/trips', trip())).status).toBe(201);
  expect(stack.participants.car.bookings().filter((b) => b.status === 'booked')).toHaveLength(2);
});
