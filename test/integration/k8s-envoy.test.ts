/**
 * The Envoy config inside deploy/kubernetes is the one that works: the EnvoyFilter's patches,
 * taken from the kustomize output, are applied to a loopback model of the trips pod's Istio sidecar
 * (test/helpers/k8s-bootstrap.ts: what Istio generates vs what the manifests add), the result is
 * accepted by Envoy 1.40's `--mode validate`, and then that same bootstrap runs the demo sagas end
 * to end: client → sidecar inbound (ext_proc) → sagamesh, configured with the manifest container's
 * own environment and the rendered ConfigMap mounted like the kubelet does → step calls through the
 * sidecar's outbound port-80 listener, routed by Host → the participants.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EnvoyProcess } from '../../demo/envoy';
import { startEnvoy, validateEnvoyConfig } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { freePort, startStack } from '../../demo/stack';
import type { EnvoyFilterPatch, SidecarModel } from '../helpers/k8s-bootstrap';
import { envoyFilterPatches, sidecarBootstrapYaml } from '../helpers/k8s-bootstrap';
import type { K8sObject } from '../helpers/k8s';
import {
  container,
  envOf,
  mountConfigMap,
  only,
  render,
  specOf,
  updateMountedConfigMap,
} from '../helpers/k8s';

jest.setTimeout(90_000);

const POD_GRPC_PORT = 50051;

let objects: K8sObject[];
let patches: EnvoyFilterPatch[];
let manifestEnv: Record<string, string>;
let workDir: string;
let stack: Stack | undefined;
let sidecar: EnvoyProcess | undefined;
let inboundUrl: string;
let accessLog: string;
let sagasDir: string;

/** The demo's port-80 Services, as the sidecar's outbound listener knows them. */
function meshServices(ports: Stack['ports']): SidecarModel['services'] {
  return objects
    .filter(
      (o) =>
        o.kind === 'Service' && specOf<{ ports: { port: number }[] }>(o).ports.some((p) => p.port === 80),
    )
    .map((s) => {
      const name = s.metadata.name as 'hotel' | 'flight' | 'car' | 'trips';
      if (!(name in ports)) throw new Error(`Service ${name} has no process in the stack`);
      return { name, namespace: s.metadata.namespace ?? 'default', port: ports[name] };
    });
}

beforeAll(async () => {
  objects = render('base').objects;
  patches = envoyFilterPatches(only(objects, 'EnvoyFilter', 'sagamesh'));
  const trips = only(objects, 'Deployment', 'trips');
  manifestEnv = envOf(container(trips, 'sagamesh'));
  expect(manifestEnv['SAGAMESH_GRPC_ADDR']).toBe(`127.0.0.1:${POD_GRPC_PORT}`);

  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-k8s-e2e-'));
  sagasDir = path.join(workDir, 'sagas');
  fs.mkdirSync(sagasDir);
  mountConfigMap(only(objects, 'ConfigMap', 'sagamesh-sagas'), sagasDir);
  accessLog = path.join(workDir, 'inbound-access.log');

  // The outbound listener's port is needed now: it is sagamesh's egress URL.
  const outboundPort = await freePort();

  // sagamesh with the manifest container's environment. Localised, because this is one host and
  // not a pod: the ConfigMap mount, the emptyDir, and the addresses (the stack gives sagamesh a free
  // gRPC port, which the bootstrap maps 127.0.0.1:50051 to; the egress URL — in the pod the captured
  // ClusterIP of a port-80 Service — is the outbound port-80 listener itself).
  const localised = [
    'SAGAMESH_GRPC_ADDR',
    'SAGAMESH_ADMIN_ADDR',
    'SAGAMESH_SAGAS_DIR',
    'SAGAMESH_STORE',
    'SAGAMESH_EGRESS_URL',
  ];
  const verbatim = Object.fromEntries(
    Object.entries(manifestEnv).filter(([name]) => !localised.includes(name)),
  );
  stack = await startStack({
    ports: 'free',
    sagasDir,
    env: {
      ...verbatim,
      SAGAMESH_SAGAS_DIR: sagasDir,
      SAGAMESH_STORE: `sqlite:${path.join(workDir, 'sagamesh.db')}`,
      SAGAMESH_EGRESS_URL: `http://127.0.0.1:${outboundPort}`,
    },
  });

  // Picked just before Envoy binds them: a free port can be taken by a parallel test meanwhile.
  const sidecarPorts = { inbound: await freePort(), outbound: outboundPort, admin: await freePort() };
  const model: SidecarModel = {
    inboundPort: sidecarPorts.inbound,
    appContainerPort: 8080,
    appPort: stack.ports.trips,
    outboundPort: sidecarPorts.outbound,
    adminPort: sidecarPorts.admin,
    services: meshServices(stack.ports),
    podLoopbackPorts: { [POD_GRPC_PORT]: stack.ports.extProc },
    accessLogPath: accessLog,
  };
  const bootstrap = sidecarBootstrapYaml(patches, model);
  const { ok, output } = await validateEnvoyConfig(bootstrap);
  if (!ok) throw new Error(`envoy --mode validate rejected the sidecar bootstrap:\n${output}\n${bootstrap}`);
  sidecar = await startEnvoy({ configYaml: bootstrap, adminPort: sidecarPorts.admin });
  inboundUrl = `http://127.0.0.1:${sidecarPorts.inbound}`;
});

afterAll(async () => {
  await sidecar?.stop();
  await stack?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

beforeEach(() => {
  if (!stack) return;
  for (const p of Object.values(stack.participants)) p.reset();
  stack.app.reset();
});

interface Answer {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- assertions walk arbitrary JSON
  body: any;
}

async function post(pathname: string, body: unknown): Promise<Answer> {
  const res = await fetch(`${inboundUrl}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

const trip = (over: Record<string, unknown> = {}) => ({
  guest: 'Ada',
  hotel: { city: 'Lisbon', nights: 2 },
  flight: { from: 'BER', to: 'LIS' },
  car: { class: 'compact' },
  ...over,
});

async function accessLogLine(pred: (line: string) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const lines = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8').split('\n').filter(pred) : [];
    if (lines[0]) return JSON.parse(lines[0]) as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no matching line in ${accessLog}`);
}

describe('the manifests’ Envoy fragments in a model of the trips pod’s sidecar', () => {
  test('the bootstrap is the Istio stand-ins plus exactly the EnvoyFilter patches', () => {
    expect(patches.map((p) => `${p.applyTo}/${p.patch.operation}`).sort()).toEqual([
      'CLUSTER/ADD',
      'HTTP_FILTER/INSERT_BEFORE',
    ]);
  });

  test('the verbatim bootstrap (pod ports unmapped) passes envoy --mode validate too', async () => {
    const model: SidecarModel = {
      inboundPort: 15006,
      appContainerPort: 8080,
      appPort: 8080,
      outboundPort: 15001,
      adminPort: 15000,
      services: [{ name: 'hotel', namespace: 'sagamesh-demo', port: 8080 }],
      podLoopbackPorts: { [POD_GRPC_PORT]: POD_GRPC_PORT },
      accessLogPath: '/dev/null',
    };
    const { ok, output } = await validateEnvoyConfig(sidecarBootstrapYaml(patches, model));
    if (!ok) throw new Error(output);
  });

  test('book-trip: 201, three bookings made through the outbound listener, saga metadata in the access log', async () => {
    const res = await post('/trips', trip());
    expect(res.status).toBe(201);
    const sagaId = res.headers.get('x-sagamesh-saga-id') ?? '';
    expect(res.body.tripId).toBe(sagaId);
    for (const name of ['hotel', 'flight', 'car'] as const) {
      expect(stack?.participants[name].bookings()).toMatchObject([{ status: 'booked', sagaId }]);
    }
    // metadata_options.receiving_namespaces from the EnvoyFilter lets sagamesh's metadata through.
    const entry = await accessLogLine((l) => l.includes(sagaId));
    expect(entry).toMatchObject({
      saga_id: sagaId,
      saga: 'book-trip',
      saga_outcome: 'succeeded',
      response_code: 201,
    });
    // The step calls went through the sidecar's outbound clusters, one per participant Service.
    const filter = encodeURIComponent('^cluster\\.outbound.*upstream_rq_2xx$');
    const stats = await (await fetch(`${sidecar?.adminUrl}/stats?filter=${filter}`)).text();
    for (const name of ['hotel', 'flight', 'car']) {
      const count = new RegExp(
        `outbound\\|80\\|\\|${name}\\.sagamesh-demo\\.svc\\.cluster\\.local\\.upstream_rq_2xx: (\\d+)`,
      ).exec(stats);
      expect({ name, count: Number(count?.[1]) }).toEqual({ name, count: 1 });
    }
  });

  test('book-trip: a rejected car compensates hotel and flight (409)', async () => {
    const res = await post('/trips', trip({ car: { class: 'compact', fault: 'fail' } }));
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ status: 'compensated', failedStep: 'car' });
    expect(stack?.participants.hotel.bookings().map((b) => b.status)).toEqual(['cancelled']);
    expect(stack?.participants.flight.bookings().map((b) => b.status)).toEqual(['cancelled']);
  });

  test('plan-itinerary (pivot): the request continues to the app behind the inbound listener', async () => {
    const res = await post('/itineraries', {
      guest: 'Ada',
      hotel: { city: 'Porto', nights: 1 },
      flight: { from: 'BER', to: 'OPO' },
    });
    expect(res.status).toBe(200);
    expect(res.body.app).toBe('trips');
    expect(res.body.headers['x-hotel-booking']).toBe(stack?.participants.hotel.bookings()[0]?.id);
  });

  test('a request that matches no saga reaches the app unchanged', async () => {
    const res = await fetch(`${inboundUrl}/trips/42?view=full`, { method: 'GET' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'GET', path: '/trips/42?view=full' });
    expect(stack?.participants.hotel.calls()).toHaveLength(0);
  });

  test('a saga changed in the ConfigMap is in force once the kubelet has swapped the mount', async () => {
    const data = only(objects, 'ConfigMap', 'sagamesh-sagas').data ?? {};
    const bookTrip = data['book-trip.yaml'] ?? '';
    expect(bookTrip).toMatch(/^ {6}status: 201$/m);
    updateMountedConfigMap(sagasDir, {
      ...data,
      'book-trip.yaml': bookTrip.replace(/^( {6}status: )201$/m, '$1202'),
    });
    let status = 0;
    for (let i = 0; i < 100 && status !== 202; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await post('/trips', trip())).status;
    }
    expect(status).toBe(202);
  });

  test('fail closed: with sagamesh gone the sidecar answers 500 and the app sees nothing', async () => {
    await stack?.sagamesh.stop();
    const res = await post('/trips', trip());
    expect(res.status).toBe(500);
    expect(stack?.app.calls()).toHaveLength(0);
  });
});
