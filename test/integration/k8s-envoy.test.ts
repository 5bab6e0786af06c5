/**
 * The Envoy config inside deploy/kubernetes is the one that works: the EnvoyFilter's patches,
 * taken from the kustomize output, are applied to a loopback model of the trips pod's Istio sidecar
 * (test/helpers/k8s-bootstrap.ts: what Istio generates vs what the manifests add), the result is
 * accepted by Envoy 1.40's `--mode validate`, and then that same bootstrap runs the demo sagas end
 * to end: client → sidecar inbound (ext_proc) → sagamesh, configured with the manifest container's
 * own environment and the rendered ConfigMap mounted like the kubelet does → step calls through the
 * sidecar's outbound port-80 listener, routed by Host → the participants.
 * The pod's ProxyConfig `runtimeValues` go into the model's bootstrap the way istio-agent writes
 * them, and pass-through load shows they take effect: the sidecar half-closes its ext_proc streams
 * instead of resetting them (bench/notes.md, finding 4). The Envoy Gateway overlay gets the same
 * check with a model of its gateway (test/helpers/k8s-gateway-bootstrap.ts), plus its limits: a saga
 * answer held past Envoy Gateway's 10 s grpc_service timeout, and more concurrent sagas than Envoy's
 * default circuit breakers allow.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EnvoyProcess } from '../../demo/envoy';
import { ENVOY_CONFIG_PATH, startEnvoy, validateEnvoyConfig } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { freePort, startStack } from '../../demo/stack';
import * as grpc from '@grpc/grpc-js';
import YAML from 'yaml';
import { externalProcessorService } from '../../src/extproc/protos';
import { ERRORS } from '../../src/errors';
import type { EnvoyFilterPatch, SidecarModel } from '../helpers/k8s-bootstrap';
import {
  envoyFilterPatches,
  istioRuntimeFlags,
  proxyConfigOf,
  sidecarBootstrap,
  sidecarBootstrapYaml,
} from '../helpers/k8s-bootstrap';
import {
  ENVOY_GATEWAY_PATH_SETTINGS,
  gatewayBootstrap,
  gatewayBootstrapYaml,
  gatewayExtProcCircuitBreakers,
  gatewayGrpcClientCache,
  gatewayLayeredRuntime,
  gatewayRouteTimeout,
} from '../helpers/k8s-gateway-bootstrap';
import type { K8sObject } from '../helpers/k8s';
import type { Answer } from '../helpers/trip-client';
import { postJson, trip } from '../helpers/trip-client';
import { counters, extProcCounters, passThrough } from '../helpers/envoy-stats';
import {
  container,
  envOf,
  mountConfigMap,
  only,
  podTemplate,
  render,
  specOf,
  updateMountedConfigMap,
} from '../helpers/k8s';

jest.setTimeout(90_000);

/** How long the stub processor below holds its answer: longer than Envoy Gateway's 10 s grpc_service timeout. */
const HOLD_MS = 12_000;

/**
 * A stand-in for sagamesh that answers request headers with CONTINUE and holds its answer to the
 * request body for `holdMs` (a saga that runs that long), then ends the request with a 201
 * ImmediateResponse. Records how each stream ended and the deadline Envoy gave it.
 */
async function holdingExtProc(
  holdMs: number,
): Promise<{ port: number; ends: string[]; deadlines: number[]; close: () => void }> {
  const ends: string[] = [];
  const deadlines: number[] = [];
  const server = new grpc.Server();
  server.addService(externalProcessorService(), {
    Process: (call: grpc.ServerDuplexStream<Record<string, unknown>, object>) => {
      let timer: NodeJS.Timeout | undefined;
      // Infinity unless Envoy sent a grpc-timeout header (what a stream timeout would send).
      const deadline = call.getDeadline();
      deadlines.push(deadline instanceof Date ? deadline.getTime() : deadline);
      call.on('data', (msg: Record<string, unknown>) => {
        if (msg['request_headers']) call.write({ request_headers: { response: { status: 'CONTINUE' } } });
        if (msg['request_body'])
          timer = setTimeout(
            () =>
              call.write({ immediate_response: { status: { code: 'Created' }, body: Buffer.from('held') } }),
            holdMs,
          );
      });
      call.on('cancelled', () => {
        clearTimeout(timer);
        ends.push('cancelled');
      });
      call.on('end', () => {
        ends.push('end');
        call.end();
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, ends, deadlines, close: () => server.forceShutdown() };
}

const POD_GRPC_PORT = 50051;

/** envoy/envoy.yaml's runtime flags (its one static layer): what the manifests must carry too. */
const ENVOY_YAML_RUNTIME = (
  YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as {
    layered_runtime: { layers: { static_layer: Record<string, unknown> }[] };
  }
).layered_runtime.layers[0]?.static_layer;

/** envoy/envoy.yaml's gRPC client cache settings: what the manifests must carry too. */
const ENVOY_YAML_GRPC_CLIENT_CACHE = (
  YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as {
    grpc_async_client_manager_config: Record<string, unknown>;
  }
).grpc_async_client_manager_config;

/**
 * The pod's Istio bootstrap override: the `custom_bootstrap.json` of the ConfigMap its
 * `sidecar.istio.io/bootstrapOverride` annotation names, which istio-agent hands to Envoy as
 * `--config-yaml` (pkg/envoy/proxy.go) for Envoy to merge into the bootstrap it generated.
 */
function istioBootstrapOverride(deployment: K8sObject): string {
  const name = podTemplate(deployment).metadata.annotations?.['sidecar.istio.io/bootstrapOverride'];
  if (name === undefined)
    throw new Error(`${deployment.metadata.name}: no sidecar.istio.io/bootstrapOverride`);
  const data = (only(objects, 'ConfigMap', name) as K8sObject & { data?: Record<string, string> }).data;
  const text = data?.['custom_bootstrap.json'];
  if (text === undefined) throw new Error(`ConfigMap ${name} has no custom_bootstrap.json`);
  return text;
}

/** envoy/envoy.yaml's ingress connection manager. */
const ENVOY_YAML_INGRESS = (() => {
  const config = YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as {
    static_resources: {
      listeners: {
        name: string;
        filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[];
      }[];
    };
  };
  const ingress = config.static_resources.listeners.find((l) => l.name === 'ingress');
  return ingress?.filter_chains[0]?.filters[0]?.typed_config ?? {};
})();

/** The timeout of envoy/envoy.yaml's catch-all ingress route to `trips` (the pivot upstream). */
const ENVOY_YAML_TRIPS_TIMEOUT = (() => {
  const config = YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as {
    static_resources: {
      listeners: {
        name: string;
        filter_chains: {
          filters: {
            typed_config: {
              route_config?: {
                virtual_hosts: { routes: { match: { prefix?: string }; route?: { timeout?: string } }[] }[];
              };
            };
          }[];
        }[];
      }[];
    };
  };
  const ingress = config.static_resources.listeners.find((l) => l.name === 'ingress');
  const routes =
    ingress?.filter_chains[0]?.filters[0]?.typed_config.route_config?.virtual_hosts[0]?.routes ?? [];
  return routes.find((r) => r.match.prefix === '/')?.route?.timeout;
})();

/**
 * Pass-through requests under load: well past nghttp2's burst of 1000 stream resets per connection,
 * after which Node's HTTP/2 server answers resets with GOAWAY (bench/notes.md, finding 4).
 */
const LOAD_REQUESTS = 1200;
const LOAD_CONCURRENCY = 32;

let objects: K8sObject[];
let patches: EnvoyFilterPatch[];
let runtimeValues: Record<string, string>;
let bootstrapOverride: string;
let sidecarModel: SidecarModel;
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
  runtimeValues = proxyConfigOf(podTemplate(trips).metadata.annotations).runtimeValues ?? {};
  bootstrapOverride = istioBootstrapOverride(trips);
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
    runtimeValues,
  };
  sidecarModel = model;
  const bootstrap = sidecarBootstrapYaml(patches, model);
  const { ok, output } = await validateEnvoyConfig(bootstrap, bootstrapOverride);
  if (!ok) throw new Error(`envoy --mode validate rejected the sidecar bootstrap:\n${output}\n${bootstrap}`);
  sidecar = await startEnvoy({
    configYaml: bootstrap,
    adminPort: sidecarPorts.admin,
    configOverride: bootstrapOverride,
  });
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

const post = (pathname: string, body: unknown): Promise<Answer> => postJson(inboundUrl, pathname, body);

/** Starts a second Envoy with `build(ports)` for the duration of `body`. */
async function withEnvoy<T>(
  build: (ports: { listener: number; admin: number }) => string,
  body: (envoy: EnvoyProcess, url: string) => Promise<T>,
): Promise<T> {
  const ports = { listener: await freePort(), admin: await freePort() };
  const config = build(ports);
  const { ok, output } = await validateEnvoyConfig(config);
  if (!ok) throw new Error(`envoy --mode validate rejected the bootstrap:\n${output}\n${config}`);
  const envoy = await startEnvoy({ configYaml: config, adminPort: ports.admin });
  try {
    return await body(envoy, `http://127.0.0.1:${ports.listener}`);
  } finally {
    await envoy.stop();
  }
}

async function accessLogLine(pred: (line: string) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const lines = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8').split('\n').filter(pred) : [];
    if (lines[0]) return JSON.parse(lines[0]) as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no matching line in ${accessLog}`);
}

/** The ext_proc cluster Envoy Gateway names for the overlay's EnvoyExtensionPolicy. */
const GATEWAY_EXTPROC_CLUSTER = 'envoyextensionpolicy/sagamesh-demo/sagamesh/extproc/0';

/** The overlay's three objects the gateway model translates. */
function gatewayInputs(): { envoyProxy: K8sObject; policy: K8sObject; route: K8sObject } {
  const objs = render('overlays/envoy-gateway').objects;
  return {
    envoyProxy: only(objs, 'EnvoyProxy', 'sagamesh-edge'),
    policy: only(objs, 'EnvoyExtensionPolicy', 'sagamesh'),
    route: only(objs, 'HTTPRoute', 'trips'),
  };
}

/** The gateway model's bootstrap (against the demo stack's app and `extProcPort`) and its ext_proc filter. */
function gatewayModel(
  inputs: { envoyProxy: K8sObject; policy: K8sObject; route: K8sObject },
  ports: { listener: number; admin: number },
  extProcPort: number,
): { yaml: string; extProcFilter: unknown } {
  const { envoyProxy, policy, route } = inputs;
  const model = {
    listenerPort: ports.listener,
    adminPort: ports.admin,
    appPort: stack?.ports.trips ?? 0,
    extProcPort,
  };
  const listener = (
    gatewayBootstrap(envoyProxy, policy, route, model)['static_resources'] as {
      listeners: { filter_chains: { filters: { typed_config: { http_filters: unknown[] } }[] }[] }[];
    }
  ).listeners[0];
  return {
    yaml: gatewayBootstrapYaml(envoyProxy, policy, route, model),
    extProcFilter: listener?.filter_chains[0]?.filters[0]?.typed_config.http_filters[0],
  };
}

describe('overlays/envoy-gateway: the EnvoyProxy and the EnvoyExtensionPolicy in a model of the gateway', () => {
  test('the EnvoyProxy`s layer, merged into Envoy Gateway`s default runtime, carries envoy/envoy.yaml`s flags', () => {
    const { envoyProxy } = gatewayInputs();
    const layers = (
      gatewayLayeredRuntime(envoyProxy) as { layers: { name: string; static_layer: unknown }[] }
    ).layers;
    expect(layers.map((l) => l.name)).toEqual(['global_config', 'sagamesh']);
    expect(layers[1]?.static_layer).toEqual(ENVOY_YAML_RUNTIME);
  });

  test('the EnvoyProxy`s bootstrap keeps the ext_proc gRPC client cached as envoy/envoy.yaml does', () => {
    expect(ENVOY_YAML_GRPC_CLIENT_CACHE).toBeDefined();
    expect(gatewayGrpcClientCache(gatewayInputs().envoyProxy)).toEqual(ENVOY_YAML_GRPC_CLIENT_CACHE);
  });

  test('the gateway handles paths as envoy/envoy.yaml`s ingress does (Envoy Gateway`s defaults)', () => {
    const settings = Object.keys(ENVOY_GATEWAY_PATH_SETTINGS);
    expect(Object.fromEntries(settings.map((k) => [k, ENVOY_YAML_INGRESS[k]]))).toEqual(
      ENVOY_GATEWAY_PATH_SETTINGS,
    );
  });

  test('the HTTPRoute`s timeout reaches the gateway`s route as envoy/envoy.yaml`s trips route has it', () => {
    const { route } = gatewayInputs();
    // Without `timeouts` Envoy Gateway sets no route timeout: Envoy's default (15 s) would apply.
    expect(gatewayRouteTimeout(route)).toBeDefined();
    expect(gatewayRouteTimeout(route)).toBe(ENVOY_YAML_TRIPS_TIMEOUT);
  });

  test(`${LOAD_REQUESTS} pass-through requests through the gateway model: no stream reset, no GOAWAY, no retry, no 5xx`, async () => {
    const inputs = gatewayInputs();
    const result = await withEnvoy(
      (ports) => {
        const { yaml, extProcFilter } = gatewayModel(inputs, ports, stack?.ports.extProc ?? 0);
        // The translated filter has envoy/envoy.yaml's retry policy.
        expect(extProcFilter).toMatchObject({
          typed_config: {
            grpc_service: {
              envoy_grpc: { cluster_name: GATEWAY_EXTPROC_CLUSTER },
              retry_policy: {
                retry_on: 'refused-stream,connect-failure',
                num_retries: 20,
                retry_back_off: { base_interval: '1s', max_interval: '1s' },
              },
            },
          },
        });
        return yaml;
      },
      async (envoy, url) => {
        const statuses = await passThrough(url, LOAD_REQUESTS, LOAD_CONCURRENCY);
        return {
          statuses,
          counters: await extProcCounters(envoy.adminUrl, GATEWAY_EXTPROC_CLUSTER, 'http-80'),
        };
      },
    );
    expect(result.statuses).toEqual({ 200: LOAD_REQUESTS });
    expect(result.counters).toEqual({
      tx_reset: 0,
      goaway: 0,
      retries: 0,
      streams_started: LOAD_REQUESTS,
      streams_failed: 0,
    });
  });
});

describe('overlays/envoy-gateway: limits of the gateway`s ext_proc cluster and stream', () => {
  const cluster = GATEWAY_EXTPROC_CLUSTER;

  test('the policy`s circuitBreaker gives the ext_proc cluster envoy/envoy.yaml`s DEFAULT thresholds', () => {
    const envoyYaml = YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as {
      static_resources: {
        clusters: { name: string; circuit_breakers: { thresholds: Record<string, unknown>[] } }[];
      };
    };
    const wanted = envoyYaml.static_resources.clusters
      .find((c) => c.name === 'sagamesh')
      ?.circuit_breakers.thresholds.find((t) => t['priority'] === 'DEFAULT');
    expect(wanted).toBeDefined();
    const { policy } = gatewayInputs();
    const [extProc] = specOf<{ extProc: Parameters<typeof gatewayExtProcCircuitBreakers>[0][] }>(
      policy,
    ).extProc;
    if (!extProc) throw new Error('no extProc in the EnvoyExtensionPolicy');
    // Envoy Gateway generates only a DEFAULT threshold; ext_proc streams are DEFAULT-priority.
    expect(gatewayExtProcCircuitBreakers(extProc)).toEqual({ thresholds: [wanted] });
  });

  test(`a saga that answers after ${HOLD_MS / 1000} s is not cut by Envoy Gateway's 10 s grpc_service timeout; Envoy runs the thresholds`, async () => {
    const inputs = gatewayInputs();
    const stub = await holdingExtProc(HOLD_MS);
    try {
      const result = await withEnvoy(
        (ports) => {
          const { yaml, extProcFilter } = gatewayModel(inputs, ports, stub.port);
          // What the model gives Envoy: Envoy Gateway's fixed 10 s on the grpc_service.
          expect(extProcFilter).toMatchObject({ typed_config: { grpc_service: { timeout: '10s' } } });
          return yaml;
        },
        async (envoy, url) => {
          const started = Date.now();
          const answer = await postJson(url, '/trips', trip());
          const elapsed = Date.now() - started;
          const clusters = await (await fetch(`${envoy.adminUrl}/clusters`)).text();
          const limits = clusters
            .split('\n')
            .filter((l) => l.startsWith(`${cluster}::default_priority::`))
            .map((l) => l.slice(cluster.length + 2));
          return {
            status: answer.status,
            body: answer.text,
            elapsed,
            limits,
            counters: await extProcCounters(envoy.adminUrl, cluster, 'http-80'),
          };
        },
      );
      expect({ status: result.status, body: result.body }).toEqual({ status: 201, body: 'held' });
      expect(result.elapsed).toBeGreaterThanOrEqual(HOLD_MS - 100);
      expect(result.counters).toMatchObject({
        tx_reset: 0,
        retries: 0,
        streams_started: 1,
        streams_failed: 0,
      });
      // Envoy opened the stream without a deadline (no grpc-timeout header): the 10 s is not applied.
      expect(stub.deadlines).toEqual([Infinity]);
      expect(result.limits).toEqual(
        expect.arrayContaining([
          'default_priority::max_connections::100000',
          'default_priority::max_pending_requests::100000',
          'default_priority::max_requests::100000',
          'default_priority::max_retries::100000',
        ]),
      );
    } finally {
      stub.close();
    }
  });
});

describe('overlays/envoy-gateway: more concurrent sagas than Envoy`s default circuit breakers allow', () => {
  const cluster = GATEWAY_EXTPROC_CLUSTER;
  const CONCURRENT = 1100; // above the 1024 of Envoy's (and Envoy Gateway's) defaults

  /**
   * `CONCURRENT` sagas at once (the stub holds each answer 2 s) through a gateway model built from
   * `policy`: status → count, and the ext_proc cluster's circuit-breaker overflows.
   */
  async function concurrentSagas(
    policy: K8sObject,
  ): Promise<{ statuses: Record<number, number>; overflow: number }> {
    const inputs = { ...gatewayInputs(), policy };
    const stub = await holdingExtProc(2_000);
    try {
      return await withEnvoy(
        (ports) => gatewayModel(inputs, ports, stub.port).yaml,
        async (envoy, url) => {
          const statuses: Record<number, number> = {};
          await Promise.all(
            Array.from({ length: CONCURRENT }, async () => {
              const res = await fetch(`${url}/trips`, { method: 'POST', body: '{}' });
              await res.arrayBuffer();
              statuses[res.status] = (statuses[res.status] ?? 0) + 1;
            }),
          );
          // max_pending_requests and max_requests (an HTTP/2 cluster's streams) overflows.
          const escaped = cluster.replace(/[.|/]/g, (ch) => `\\${ch}`);
          const c = await counters(
            `${envoy.adminUrl}/stats?filter=${encodeURIComponent(`^cluster\\.${escaped}\\.upstream_rq_(pending|active)_overflow$`)}`,
            /^cluster\.\S+\.(upstream_rq_(?:pending|active)_overflow): (\d+)$/,
          );
          return { statuses, overflow: Object.values(c).reduce((a, b) => a + b, 0) };
        },
      );
    } finally {
      stub.close();
    }
  }

  test(`${CONCURRENT} sagas held at once: all answered with the overlay's circuit breakers`, async () => {
    expect(await concurrentSagas(gatewayInputs().policy)).toEqual({
      statuses: { 201: CONCURRENT },
      overflow: 0,
    });
  });

  test('control: without them (Envoy Gateway`s defaults) the gateway answers the excess with its statusOnError, 503', async () => {
    const { policy } = gatewayInputs();
    const spec = specOf<{ extProc: { backendSettings: { circuitBreaker?: unknown } }[] }>(policy);
    for (const e of spec.extProc) delete e.backendSettings.circuitBreaker;
    const { statuses, overflow } = await concurrentSagas(policy);
    expect(overflow).toBeGreaterThan(0);
    expect(statuses[503]).toBe(overflow);
    expect(statuses[201]).toBe(CONCURRENT - overflow);
  });
});

describe('the manifests’ Envoy fragments in a model of the trips pod’s sidecar', () => {
  test('the bootstrap is the Istio stand-ins plus exactly the EnvoyFilter patches', () => {
    expect(patches.map((p) => `${p.applyTo}/${p.patch.operation}`).sort()).toEqual([
      'CLUSTER/ADD',
      'HTTP_FILTER/INSERT_BEFORE',
      'NETWORK_FILTER/MERGE',
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

  test('plan-itinerary (pivot): spellings some server might read as its path are refused; owned headers never reach the app', async () => {
    const body = { guest: 'Ada', hotel: { city: 'Porto', nights: 1 }, flight: { from: 'BER', to: 'OPO' } };
    // Istio's BASE normalisation leaves ;params and escaped slashes alone: sagamesh refuses them.
    for (const path of ['/itineraries;x', '/itineraries%2F', '/itineraries%5C']) {
      const res = await postJson(inboundUrl, path, body, { 'x-hotel-booking': 'FORGED' });
      expect({ path, status: res.status, code: res.body?.error?.code }).toEqual({
        path,
        status: 400,
        code: 'SAGAMESH_ERR_PATH_AMBIGUOUS',
      });
    }
    const other = await postJson(inboundUrl, '/elsewhere', body, { 'x-hotel-booking': 'FORGED' });
    expect(other.status).toBe(200);
    expect(stack?.app.calls().map((c) => [c.path, c.headers['x-hotel-booking']])).toEqual([
      ['/elsewhere', undefined],
    ]);
    expect(stack?.participants.hotel.calls()).toEqual([]);
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

  test('the pod`s bootstrap override, merged by the sidecar`s Envoy, keeps the gRPC client cached as envoy/envoy.yaml does', async () => {
    const mask = 'bootstrap.grpc_async_client_manager_config';
    const dump = (await (await fetch(`${sidecar?.adminUrl}/config_dump?mask=${mask}`)).json()) as {
      configs: { bootstrap?: { grpc_async_client_manager_config?: unknown } }[];
    };
    expect(dump.configs[0]?.bootstrap?.grpc_async_client_manager_config).toEqual(
      ENVOY_YAML_GRPC_CLIENT_CACHE,
    );
  });

  test('the pod`s runtimeValues, as istio-agent renders them, are envoy/envoy.yaml`s runtime flags', () => {
    expect(ENVOY_YAML_RUNTIME).toBeDefined();
    expect(Object.keys(runtimeValues).length).toBeGreaterThan(0);
    // The bootstrap the sidecar model runs: Istio's static layer "global config", then "admin".
    const layers = (sidecarBootstrap(patches, sidecarModel)['layered_runtime'] as { layers: unknown[] })
      .layers;
    expect(layers).toEqual([
      { name: 'global config', static_layer: ENVOY_YAML_RUNTIME },
      { name: 'admin', admin_layer: {} },
    ]);
    expect(istioRuntimeFlags(runtimeValues)).toEqual(ENVOY_YAML_RUNTIME);
  });

  test(`${LOAD_REQUESTS} pass-through requests through the sidecar: no stream reset, no GOAWAY, no retry, no 5xx`, async () => {
    const adminUrl = sidecar?.adminUrl ?? '';
    const statPrefix = 'inbound_0.0.0.0_8080';
    const before = await extProcCounters(adminUrl, 'sagamesh', statPrefix);
    expect(await passThrough(inboundUrl, LOAD_REQUESTS, LOAD_CONCURRENCY)).toEqual({ 200: LOAD_REQUESTS });
    const after = await extProcCounters(adminUrl, 'sagamesh', statPrefix);
    // Every stream of this sidecar so far (the saga tests' too) was half-closed, none reset.
    expect(after).toEqual({
      tx_reset: 0,
      goaway: 0,
      retries: 0,
      streams_started: (before.streams_started ?? 0) + LOAD_REQUESTS,
      streams_failed: 0,
    });
  });

  test('control: the same runtimeValues given to Envoy as strings (no Istio conversion) change nothing', async () => {
    // What a bootstrap gets when "true" is passed through verbatim (Istio before 1.19, or a
    // hand-written static layer): Envoy 1.40 reads no boolean from the string, and resets every
    // ext_proc stream again. Proves the check above can fail.
    const requests = 200;
    const result = await withEnvoy(
      (ports) => {
        const bootstrap = sidecarBootstrap(patches, {
          ...sidecarModel,
          inboundPort: ports.listener,
          outboundPort: 0,
          adminPort: ports.admin,
          accessLogPath: '/dev/null',
        });
        bootstrap['layered_runtime'] = { layers: [{ name: 'global config', static_layer: runtimeValues }] };
        // Only the inbound listener: the outbound one is the running sidecar's.
        const resources = bootstrap['static_resources'] as { listeners: unknown[] };
        resources.listeners = resources.listeners.slice(0, 1);
        return YAML.stringify(bootstrap, { lineWidth: 0 });
      },
      async (envoy, url) => {
        const statuses = await passThrough(url, requests, 8);
        return {
          statuses,
          counters: await extProcCounters(envoy.adminUrl, 'sagamesh', 'inbound_0.0.0.0_8080'),
        };
      },
    );
    expect(result.statuses).toEqual({ 200: requests });
    expect(result.counters.streams_started).toBe(requests);
    expect(result.counters.tx_reset).toBe(requests);
  });

  test('fail closed: with sagamesh gone the sidecar answers the coded 503 after its retries, and the app sees nothing', async () => {
    await stack?.sagamesh.stop();
    const res = await post('/trips', trip());
    expect({
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      code: res.body?.error?.code,
    }).toEqual({
      status: 503,
      retryAfter: '1',
      code: ERRORS.COORDINATOR_UNAVAILABLE.code,
    });
    expect(stack?.app.calls()).toHaveLength(0);
  });
});
