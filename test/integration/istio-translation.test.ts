/**
 * The real translators, run offline on deploy/kubernetes, and their output run in Envoy 1.40 with
 * sagamesh and the demo participants on loopback (docs/istio.md, "How this is tested without a
 * cluster"):
 *  - Envoy Gateway: `egctl x translate` (Envoy Gateway v1.9.1's translator) on
 *    overlays/envoy-gateway; its bootstrap (with the EnvoyProxy merged by Envoy Gateway's own code)
 *    and its xDS (listener, routes, clusters, endpoints) become the gateway's Envoy.
 *  - Istio: tools/istio-translate (istio.io/istio's istio-agent bootstrap generation and istiod's
 *    xDS generation through pilot's FakeDiscoveryServer) on base, for the trips pod's sidecar.
 * The changes a loopback host needs are made by test/helpers (egctl-gateway.ts, istio-sidecar.ts,
 * xds-static.ts) and compared here with the expected list, so a translator whose output changes
 * shape fails the test instead of being silently adapted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import type { EnvoyProcess } from '../../demo/envoy';
import { ENVOY_CONFIG_PATH, startEnvoy, validateEnvoyConfig } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { freePort, startStack } from '../../demo/stack';
import type { K8sObject } from '../helpers/k8s';
import { container, envOf, mountConfigMap, only, render, updateMountedConfigMap } from '../helpers/k8s';
import type { GatewayXds } from '../helpers/egctl-gateway';
import { egctlInput, egctlTranslate, gatewayRunConfig } from '../helpers/egctl-gateway';
import type { Json } from '../helpers/xds-static';
import { connectionManagers, field } from '../helpers/xds-static';
import type { SidecarPorts, SidecarXds } from '../helpers/istio-sidecar';
import { istioTranslate, sidecarRunConfig } from '../helpers/istio-sidecar';
import type { ClusterState } from '../helpers/cluster-state';
import { clusterState } from '../helpers/cluster-state';
import { postJson, trip } from '../helpers/trip-client';
import { ERRORS } from '../../src/errors';
import { counters, extProcCounters, passThrough } from '../helpers/envoy-stats';
import { holdingExtProc } from '../helpers/holding-ext-proc';
import { specOf } from '../helpers/k8s';

jest.setTimeout(120_000);

interface EnvoyYaml {
  layered_runtime: { layers: { static_layer: Record<string, unknown> }[] };
  grpc_async_client_manager_config: Record<string, unknown>;
  static_resources: {
    listeners: {
      name: string;
      filter_chains: {
        filters: {
          typed_config: Record<string, unknown> & {
            route_config?: {
              virtual_hosts: { routes: { match: { prefix?: string }; route?: { timeout?: string } }[] }[];
            };
          };
        }[];
      }[];
    }[];
    clusters: { name: string; circuit_breakers: { thresholds: Record<string, unknown>[] } }[];
  };
}
const envoyYaml = YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as EnvoyYaml;
/** envoy/envoy.yaml's ingress connection manager. */
const ENVOY_YAML_INGRESS =
  envoyYaml.static_resources.listeners.find((l) => l.name === 'ingress')?.filter_chains[0]?.filters[0]
    ?.typed_config ?? {};

/**
 * Pass-through requests under load: well past nghttp2's burst of 1000 stream resets per connection,
 * after which Node's HTTP/2 server answers resets with GOAWAY (bench/notes.md, finding 4).
 */
const LOAD_REQUESTS = 1200;
const LOAD_CONCURRENCY = 32;
/** How long the stub processor holds its answer: longer than Envoy Gateway's 10 s grpc_service timeout. */
const HOLD_MS = 12_000;
/** The ext_proc cluster Envoy Gateway names for the overlay's EnvoyExtensionPolicy. */
const GATEWAY_EXTPROC_CLUSTER = 'envoyextensionpolicy/sagamesh-demo/sagamesh/extproc/0';
/** The stat prefix of the gateway's HTTP listener (Envoy Gateway: `http-<container port>`). */
const GATEWAY_STAT_PREFIX = 'http-10080';
/**
 * The stat prefix of the sidecar's inbound HTTP chains for the app port (Istio:
 * `inbound_0.0.0.0_<port>;`, the `;` ends the part its tag extraction reads).
 */
const SIDECAR_STAT_PREFIX = 'inbound_0.0.0.0_8080;';
/** envoy/envoy.yaml's runtime flags: what both translations must give the proxy too. */
const ENVOY_YAML_RUNTIME = envoyYaml.layered_runtime.layers[0]?.static_layer;

/**
 * sagamesh's environment from a manifest container, with the host-specific values replaced: the
 * addresses (the stack's free ports: gRPC, admin, and the egress unless `local` sets it) and `local`.
 */
function localisedEnv(
  manifestEnv: Record<string, string>,
  local: Record<string, string>,
): Record<string, string> {
  const localised = [
    'SAGAMESH_GRPC_ADDR',
    'SAGAMESH_ADMIN_ADDR',
    'SAGAMESH_EGRESS_URL',
    ...Object.keys(local),
  ];
  return {
    ...Object.fromEntries(Object.entries(manifestEnv).filter(([name]) => !localised.includes(name))),
    ...local,
  };
}

/** The HTTP filters of every connection manager of the listeners, by name. */
function httpFilters(listeners: readonly Json[]): Json[] {
  return listeners.flatMap((l) =>
    connectionManagers(l).flatMap((hcm) => (field(hcm, 'http_filters') as Json[] | undefined) ?? []),
  );
}

/** A translated bootstrap, checked by `envoy --mode validate` (`what` names the translator), then started. */
async function startTranslated(
  bootstrap: Json,
  adminPort: number,
  what: string,
  override?: string,
): Promise<EnvoyProcess> {
  const yaml = YAML.stringify(bootstrap, { lineWidth: 0 });
  const { ok, output } = await validateEnvoyConfig(yaml, override);
  if (!ok) throw new Error(`envoy --mode validate rejected ${what}:\n${output.slice(0, 4000)}`);
  return startEnvoy({ configYaml: yaml, adminPort, ...(override ? { configOverride: override } : {}) });
}

/** Every test starts from participants and an app with nothing booked and no fault set. */
function resetDemo(stack: Stack | undefined): void {
  if (!stack) return;
  for (const p of Object.values(stack.participants)) p.reset();
  stack.app.reset();
}
/**
 * egctl's translation of `objects`, started as an Envoy on loopback for the duration of `body`, with
 * the trips Service on `appPort` and the sagamesh Service on `extProcPort`.
 */
async function withGateway<T>(
  objects: readonly K8sObject[],
  appPort: number,
  extProcPort: number,
  body: (envoy: EnvoyProcess, url: string) => Promise<T>,
): Promise<T> {
  const input = egctlInput(objects);
  const { xds } = egctlTranslate(input);
  const ports = { listener: await freePort(), admin: await freePort() };
  const { bootstrap } = gatewayRunConfig(
    xds,
    {
      ...ports,
      services: {
        [input.clusterIPs['trips'] ?? '']: { 80: appPort },
        [input.clusterIPs['sagamesh'] ?? '']: { 50051: extProcPort },
      },
    },
    input.clusterIPs,
  );
  const envoy = await startTranslated(bootstrap, ports.admin, "egctl's config");
  try {
    return await body(envoy, `http://127.0.0.1:${ports.listener}`);
  } finally {
    await envoy.stop();
  }
}

describe('Envoy Gateway: egctl x translate of overlays/envoy-gateway, run in Envoy 1.40', () => {
  let objects: K8sObject[];
  let xds: GatewayXds;
  let gatewayKey: string;
  let rewrites: string[];
  let bootstrap: Json;
  let workDir: string;
  let stack: Stack | undefined;
  let gateway: EnvoyProcess | undefined;
  let url: string;

  beforeAll(async () => {
    objects = render('overlays/envoy-gateway').objects;
    const input = egctlInput(objects);
    ({ key: gatewayKey, xds } = egctlTranslate(input));

    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-eg-translation-'));
    const sagasDir = path.join(workDir, 'sagas');
    fs.mkdirSync(sagasDir);
    mountConfigMap(only(objects, 'ConfigMap', 'sagamesh-sagas'), sagasDir);
    // sagamesh as the overlay's Deployment runs it; its step calls leave through the stack's
    // envoy/envoy.yaml egress listener (in the cluster: the Istio sidecar of sagamesh's pod, which
    // routes by Host the same way — the Istio half of this file translates such a sidecar).
    stack = await startStack({
      ports: 'free',
      sagasDir,
      env: localisedEnv(envOf(container(only(objects, 'Deployment', 'sagamesh'), 'sagamesh')), {
        SAGAMESH_SAGAS_DIR: sagasDir,
        SAGAMESH_STORE: `sqlite:${path.join(workDir, 'sagamesh.db')}`,
      }),
    });

    const ports = { listener: await freePort(), admin: await freePort() };
    const run = gatewayRunConfig(
      xds,
      {
        ...ports,
        services: {
          [input.clusterIPs['trips'] ?? '']: { 80: stack.ports.trips },
          [input.clusterIPs['sagamesh'] ?? '']: { 50051: stack.ports.extProc },
        },
      },
      input.clusterIPs,
    );
    ({ bootstrap, rewrites } = run);
    gateway = await startTranslated(bootstrap, ports.admin, "egctl's config");
    url = `http://127.0.0.1:${ports.listener}`;
  });

  afterAll(async () => {
    await gateway?.stop();
    await stack?.stop();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  beforeEach(() => resetDemo(stack));

  test('egctl translated the Gateway sagamesh-edge, with the EnvoyExtensionPolicy`s ext_proc filter', () => {
    expect(gatewayKey).toBe('sagamesh-demo/sagamesh-edge');
    const extProc = httpFilters(xds.listeners).filter((f) =>
      String(f['name']).startsWith('envoy.filters.http.ext_proc'),
    );
    expect(extProc).toHaveLength(1);
    const filter = extProc[0] ?? {};
    // Fail closed: failure_mode_allow false (protobuf JSON leaves a false out).
    expect((filter['typedConfig'] as Json)['failureModeAllow'] ?? false).toBe(false);
    expect(filter).toMatchObject({
      // Off on the connection manager, on for the HTTPRoute the policy targets (below).
      disabled: true,
      typedConfig: {
        messageTimeout: '65s',
        allowModeOverride: true,
        statusOnError: { code: 'ServiceUnavailable' },
        grpcService: {
          envoyGrpc: { clusterName: 'envoyextensionpolicy/sagamesh-demo/sagamesh/extproc/0' },
          retryPolicy: { retryOn: 'connect-failure,refused-stream', numRetries: 20 },
        },
        processingMode: {
          requestHeaderMode: 'SEND',
          requestBodyMode: 'BUFFERED',
          responseHeaderMode: 'SEND',
        },
        metadataOptions: { receivingNamespaces: { untyped: ['sagamesh'] } },
      },
    });
    const routes = xds.routes.flatMap((r) =>
      ((r['virtualHosts'] as Json[] | undefined) ?? []).flatMap((vh) => vh['routes'] as Json[]),
    );
    expect(routes).toHaveLength(1);
    expect(routes[0]).toMatchObject({
      route: { cluster: 'httproute/sagamesh-demo/trips/rule/0', timeout: '0s' },
      typedPerFilterConfig: { [String(filter['name'])]: { config: {} } },
    });
    // The policy's circuit breakers are on the ext_proc backend's cluster.
    const cluster = xds.clusters.find(
      (c) => c['name'] === 'envoyextensionpolicy/sagamesh-demo/sagamesh/extproc/0',
    );
    expect(cluster?.['circuitBreakers']).toEqual({
      thresholds: [
        { maxConnections: 100000, maxPendingRequests: 100000, maxRequests: 100000, maxRetries: 100000 },
      ],
    });
  });

  test('the bootstrap egctl rendered merges the EnvoyProxy: envoy/envoy.yaml`s runtime flags and gRPC client cache', () => {
    const layers = (field(field(bootstrap, 'layered_runtime') as Json, 'layers') as Json[]).map((l) => ({
      name: l['name'],
      flags: field(l, 'static_layer'),
    }));
    expect(layers.map((l) => l.name)).toEqual(['global_config', 'sagamesh']);
    expect(layers[1]?.flags).toEqual(ENVOY_YAML_RUNTIME);
    expect(field(bootstrap, 'grpc_async_client_manager_config')).toMatchObject({
      maxCachedEntryIdleDuration:
        envoyYaml.grpc_async_client_manager_config['max_cached_entry_idle_duration'],
    });
  });

  test('what the harness changed in egctl`s output to run it on loopback is exactly this', () => {
    expect(rewrites).toEqual([
      'admin 127.0.0.1:19000 → a free loopback port',
      'dynamic_resources (ADS) removed: the xDS egctl printed is given statically',
      'cluster xds_cluster (Envoy Gateway, TLS with certificates from /sds) removed: no control plane',
      'listener envoy-gateway-proxy-stats-0.0.0.0-19001: 0.0.0.0:19001 → 127.0.0.1, any free port',
      'listener envoy-gateway-proxy-ready-0.0.0.0-19003: 0.0.0.0:19003 → 127.0.0.1, any free port',
      'listener sagamesh-demo/sagamesh-edge/http: 0.0.0.0:10080 → the loopback port the test sends to',
      'RDS → the pushed routes inlined (1)',
      'endpoint 10.96.0.14:80 (Service trips) → its loopback port',
      'endpoint 10.96.0.13:50051 (Service sagamesh) → its loopback port',
      'EDS → the pushed endpoints as static load assignments (3 clusters)',
    ]);
  });

  test('book-trip through the translated gateway: 201, three bookings', async () => {
    const res = await postJson(url, '/trips', trip());
    expect(res.status).toBe(201);
    const sagaId = res.headers.get('x-sagamesh-saga-id') ?? '';
    expect(sagaId).not.toBe('');
    for (const name of ['hotel', 'flight', 'car'] as const) {
      expect(stack?.participants[name].bookings()).toMatchObject([{ status: 'booked', sagaId }]);
    }
  });

  test('book-trip through the translated gateway: a rejected car compensates hotel and flight (409)', async () => {
    const res = await postJson(url, '/trips', trip({ car: { class: 'compact', fault: 'fail' } }));
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ status: 'compensated', failedStep: 'car' });
    expect(stack?.participants.hotel.bookings().map((b) => b.status)).toEqual(['cancelled']);
    expect(stack?.participants.flight.bookings().map((b) => b.status)).toEqual(['cancelled']);
  });

  test('a request that matches no saga reaches the app unchanged', async () => {
    const res = await fetch(`${url}/trips/42?view=full`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'GET', path: '/trips/42?view=full' });
  });

  test('the gateway handles paths as envoy/envoy.yaml`s ingress does (Envoy Gateway`s defaults)', () => {
    const hcms = xds.listeners
      .filter((l) => String(l['name']).split('/').length === 3)
      .flatMap(connectionManagers);
    expect(hcms).toHaveLength(1);
    const hcm = hcms[0] ?? {};
    const settings = ['normalize_path', 'merge_slashes', 'path_with_escaped_slashes_action'];
    expect(Object.fromEntries(settings.map((k) => [k, field(hcm, k)]))).toEqual(
      Object.fromEntries(settings.map((k) => [k, ENVOY_YAML_INGRESS[k]])),
    );
  });

  test('the HTTPRoute`s timeout reaches the gateway`s route as envoy/envoy.yaml`s trips route has it', () => {
    const ingress = ENVOY_YAML_INGRESS;
    const wanted = ingress.route_config?.virtual_hosts[0]?.routes.find((r) => r.match.prefix === '/')?.route
      ?.timeout;
    expect(wanted).toBeDefined();
    const routes = xds.routes.flatMap((r) =>
      ((r['virtualHosts'] as Json[] | undefined) ?? []).flatMap((vh) => vh['routes'] as Json[]),
    );
    // Without `timeouts` Envoy Gateway sets no route timeout: Envoy's default (15 s) would apply.
    expect((routes[0]?.['route'] as Json | undefined)?.['timeout']).toBe(wanted);
  });

  test('the policy`s circuitBreaker gives the ext_proc cluster envoy/envoy.yaml`s DEFAULT thresholds', () => {
    const wanted = envoyYaml.static_resources.clusters
      .find((c) => c.name === 'sagamesh')
      ?.circuit_breakers.thresholds.find((t) => t['priority'] === 'DEFAULT');
    expect(wanted).toBeDefined();
    const cluster = xds.clusters.find((c) => c['name'] === GATEWAY_EXTPROC_CLUSTER);
    // One threshold without a priority: DEFAULT, the priority ext_proc streams use.
    const thresholds = (field(cluster ?? {}, 'circuit_breakers') as { thresholds: Json[] }).thresholds;
    expect(thresholds).toHaveLength(1);
    const snake = (t: Json): Json =>
      Object.fromEntries(
        Object.entries(t).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]),
      );
    expect({ priority: 'DEFAULT', ...snake(thresholds[0] ?? {}) }).toEqual(wanted);
  });

  test(`${LOAD_REQUESTS} pass-through requests through the translated gateway: no stream reset, no GOAWAY, no retry, no 5xx`, async () => {
    const adminUrl = gateway?.adminUrl ?? '';
    const before = await extProcCounters(adminUrl, GATEWAY_EXTPROC_CLUSTER, GATEWAY_STAT_PREFIX);
    expect(await passThrough(url, LOAD_REQUESTS, LOAD_CONCURRENCY)).toEqual({ 200: LOAD_REQUESTS });
    const after = await extProcCounters(adminUrl, GATEWAY_EXTPROC_CLUSTER, GATEWAY_STAT_PREFIX);
    // Every stream of this gateway so far (the saga tests' too) was half-closed, none reset.
    expect(after).toEqual({
      tx_reset: 0,
      goaway: 0,
      retries: 0,
      streams_started: (before.streams_started ?? 0) + LOAD_REQUESTS,
      streams_failed: 0,
    });
  });

  test(`a saga that answers after ${HOLD_MS / 1000} s is not cut by Envoy Gateway's 10 s grpc_service timeout`, async () => {
    const extProc = httpFilters(xds.listeners).find((f) =>
      String(f['name']).startsWith('envoy.filters.http.ext_proc'),
    );
    // What egctl gives Envoy: Envoy Gateway's fixed 10 s on the grpc_service.
    expect(extProc).toMatchObject({ typedConfig: { grpcService: { timeout: '10s' } } });
    const stub = await holdingExtProc(HOLD_MS);
    try {
      const result = await withGateway(objects, stack?.ports.trips ?? 0, stub.port, async (envoy, gw) => {
        const started = Date.now();
        const answer = await postJson(gw, '/trips', trip());
        return {
          status: answer.status,
          body: answer.text,
          elapsed: Date.now() - started,
          counters: await extProcCounters(envoy.adminUrl, GATEWAY_EXTPROC_CLUSTER, GATEWAY_STAT_PREFIX),
        };
      });
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
    } finally {
      stub.close();
    }
  });

  /**
   * `CONCURRENT` sagas at once (the stub holds each answer 2 s) through egctl's translation of
   * `objects`: status → count, and the ext_proc cluster's circuit-breaker overflows.
   */
  const CONCURRENT = 1100; // above the 1024 of Envoy's (and Envoy Gateway's) defaults
  async function concurrentSagas(
    from: readonly K8sObject[],
  ): Promise<{ statuses: Record<number, number>; overflow: number }> {
    const stub = await holdingExtProc(2_000);
    try {
      return await withGateway(from, stack?.ports.trips ?? 0, stub.port, async (envoy, gw) => {
        const statuses: Record<number, number> = {};
        await Promise.all(
          Array.from({ length: CONCURRENT }, async () => {
            const res = await fetch(`${gw}/trips`, { method: 'POST', body: '{}' });
            await res.arrayBuffer();
            statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          }),
        );
        const escaped = GATEWAY_EXTPROC_CLUSTER.replace(/[.|/]/g, (ch) => `\\${ch}`);
        const c = await counters(
          `${envoy.adminUrl}/stats?filter=${encodeURIComponent(`^cluster\\.${escaped}\\.upstream_rq_(pending|active)_overflow$`)}`,
          /^cluster\.\S+\.(upstream_rq_(?:pending|active)_overflow): (\d+)$/,
        );
        return { statuses, overflow: Object.values(c).reduce((a, b) => a + b, 0) };
      });
    } finally {
      stub.close();
    }
  }

  test(`${CONCURRENT} sagas held at once: all answered with the overlay's circuit breakers`, async () => {
    expect(await concurrentSagas(objects)).toEqual({ statuses: { 201: CONCURRENT }, overflow: 0 });
  });

  test('control: without them (Envoy Gateway`s defaults) the gateway answers the excess with its statusOnError, 503', async () => {
    const without = objects.map((o) => {
      if (o.kind !== 'EnvoyExtensionPolicy') return o;
      const copy = JSON.parse(JSON.stringify(o)) as K8sObject;
      for (const e of specOf<{ extProc: { backendSettings: { circuitBreaker?: unknown } }[] }>(copy).extProc)
        delete e.backendSettings.circuitBreaker;
      return copy;
    });
    const { statuses, overflow } = await concurrentSagas(without);
    expect(overflow).toBeGreaterThan(0);
    expect(statuses[503]).toBe(overflow);
    expect(statuses[201]).toBe(CONCURRENT - overflow);
  });
});

describe('Istio: istio-agent`s bootstrap and istiod`s xDS for the trips pod (base), run in Envoy 1.40', () => {
  const POD = 'sagamesh-demo/trips-0';
  const POD_GRPC_PORT = 50051;
  let objects: K8sObject[];
  let state: ClusterState;
  let ports: SidecarPorts;
  let xds: SidecarXds;
  let rewrites: string[];
  let bootstrap: Json;
  let workDir: string;
  let stack: Stack | undefined;
  let sidecar: EnvoyProcess | undefined;
  let url: string;
  let sagasDir: string;

  beforeAll(async () => {
    objects = render('base').objects;
    state = clusterState(objects, ['trips']);
    xds = istioTranslate(state.objects, POD);

    const trips = only(objects, 'Deployment', 'trips');
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-istio-translation-'));
    sagasDir = path.join(workDir, 'sagas');
    fs.mkdirSync(sagasDir);
    mountConfigMap(only(objects, 'ConfigMap', 'sagamesh-sagas'), sagasDir);
    // The sidecar's outbound port-80 listener is sagamesh's egress: in the pod, the captured
    // ClusterIP of a port-80 Service (docs/istio.md, "Step calls").
    const outbound80 = await freePort();
    stack = await startStack({
      ports: 'free',
      sagasDir,
      env: localisedEnv(envOf(container(trips, 'sagamesh')), {
        SAGAMESH_SAGAS_DIR: sagasDir,
        SAGAMESH_STORE: `sqlite:${path.join(workDir, 'sagamesh.db')}`,
        SAGAMESH_EGRESS_URL: `http://127.0.0.1:${outbound80}`,
      }),
    });
    const stackPorts = stack.ports;
    const podIP = (name: string): string => state.podIPs[`${name}-0`] ?? '';
    ports = {
      inbound: await freePort(),
      outbound80,
      admin: await freePort(),
      app: stackPorts.trips,
      appContainerPort: 8080,
      podLoopback: { [POD_GRPC_PORT]: stackPorts.extProc },
      pods: {
        [podIP('trips')]: { 8080: stackPorts.trips },
        [podIP('hotel')]: { 8080: stackPorts.hotel },
        [podIP('flight')]: { 8080: stackPorts.flight },
        [podIP('car')]: { 8080: stackPorts.car },
      },
    };
    ({ bootstrap, rewrites } = sidecarRunConfig(xds, ports));
    // istio-agent hands the pod's bootstrap override to Envoy as --config-yaml (pkg/envoy/proxy.go).
    const override = only(objects, 'ConfigMap', 'sagamesh-envoy-bootstrap').data?.['custom_bootstrap.json'];
    sidecar = await startTranslated(bootstrap, ports.admin, "Istio's config", override);
    url = `http://127.0.0.1:${ports.inbound}`;
  });

  afterAll(async () => {
    await sidecar?.stop();
    await stack?.stop();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  beforeEach(() => resetDemo(stack));

  test('istiod applied the EnvoyFilter: the sagamesh cluster, ext_proc before the router on the inbound HTTP chains', () => {
    expect(xds.proxy).toMatchObject({
      id: 'trips-0.sagamesh-demo',
      labels: { app: 'trips', 'sagamesh.dev/sidecar': 'enabled' },
    });
    expect(xds.clusters.map((c) => c['name'])).toContain('sagamesh');
    const inbound = xds.listeners.find((l) => l['name'] === 'virtualInbound');
    if (!inbound) throw new Error('no virtualInbound');
    const chains = connectionManagers(inbound).map((hcm) =>
      ((field(hcm, 'http_filters') as Json[] | undefined) ?? []).map((f) => String(f['name'])),
    );
    expect(chains.length).toBeGreaterThan(0);
    for (const names of chains)
      expect(names.slice(-2)).toEqual(['envoy.filters.http.ext_proc', 'envoy.filters.http.router']);
    // No Istio-only filter is left for upstream Envoy (istiod's settings in test/helpers/istio-sidecar.ts).
    const all = JSON.stringify(xds);
    expect(all).not.toMatch(/istio\.(metadata_exchange|alpn|stats)|io\.istio\./);
  });

  test('control: with istiod`s defaults (metadata exchange and ALPN filters on) upstream Envoy 1.40 rejects the config', async () => {
    const defaults = istioTranslate(state.objects, POD, {});
    const all = JSON.stringify(defaults);
    expect(all).toContain('istio.alpn');
    expect(all).toContain('istio.metadata_exchange');
    const yaml = YAML.stringify(sidecarRunConfig(defaults, ports).bootstrap, { lineWidth: 0 });
    const { ok, output } = await validateEnvoyConfig(yaml);
    expect(ok).toBe(false);
    expect(output).toMatch(
      /istio\.envoy\.config\.filter\.http\.alpn|io\.istio\.http\.peer_metadata|istio\.metadata_exchange/,
    );
  });

  test('istio-agent wrote the pod`s runtimeValues into the bootstrap: envoy/envoy.yaml`s flags, as booleans', () => {
    const layers = field(field(xds.bootstrap, 'layered_runtime') as Json, 'layers') as Json[];
    expect(layers.map((l) => l['name'])).toEqual(['global config', 'admin']);
    expect(field(layers[0] ?? {}, 'static_layer')).toMatchObject(ENVOY_YAML_RUNTIME ?? { missing: true });
  });

  test('what the harness changed in Istio`s output to run it on loopback is exactly this', () => {
    const mtlsChain = (name: string, match: object): string =>
      `listener virtualInbound: chain ${name} ${JSON.stringify(match)} removed: Istio mTLS with certificates from istio-agent's SDS (not run; no client here speaks it)`;
    const mtlsMatch = (service: string): string =>
      `cluster outbound|80||${service}.sagamesh-demo.svc.cluster.local: transport socket match tlsMode-istio removed (Istio mTLS, certificates from istio-agent's SDS)`;
    expect(rewrites).toEqual([
      'admin 127.0.0.1:15000 → a free loopback port',
      'dynamic_resources (ADS through istio-agent) removed: istiod`s xDS is given statically',
      "cluster sds-grpc (istio-agent's SDS server, a UDS) removed: istio-agent is not run",
      "cluster xds-grpc (istio-agent's xDS proxy, a UDS) removed: istio-agent is not run",
      'cluster agent: istio-agent`s status port 15020 has no endpoint (not run)',
      'listener 0.0.0.0_15090: 0.0.0.0:15090 → 127.0.0.1, any free port',
      'listener 0.0.0.0_15021: 0.0.0.0:15021 → 127.0.0.1, any free port',
      "listener 0.0.0.0_80: 0.0.0.0:80 (bind_to_port false) → bound to sagamesh's egress port",
      'listener virtualOutbound: 0.0.0.0:15001 → 127.0.0.1, any free port (nothing is captured here)',
      'listener virtualInbound: 0.0.0.0:15006 → the loopback port the test sends to',
      mtlsChain('virtualInbound-catchall-http', {
        transportProtocol: 'tls',
        applicationProtocols: ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'],
      }),
      mtlsChain('virtualInbound', {
        transportProtocol: 'tls',
        applicationProtocols: ['istio-peer-exchange', 'istio'],
      }),
      mtlsChain('0.0.0.0_8080', {
        destinationPort: 8080,
        transportProtocol: 'tls',
        applicationProtocols: [
          'istio',
          'istio-peer-exchange',
          'istio-http/1.0',
          'istio-http/1.1',
          'istio-h2',
        ],
      }),
      "listener virtualInbound: chain 0.0.0.0_8080 destination_port 8080 → the listener's port",
      'RDS → the pushed routes inlined (1)',
      mtlsMatch('car'),
      mtlsMatch('flight'),
      mtlsMatch('hotel'),
      mtlsMatch('trips'),
      "cluster inbound|8080||: ORIGINAL_DST → STATIC, the app's loopback port",
      'EDS → the pushed endpoints as static load assignments (4 clusters)',
      "endpoint 10.244.0.10:8080 → its workload's loopback port",
      "endpoint 10.244.0.11:8080 → its workload's loopback port",
      "endpoint 10.244.0.12:8080 → its workload's loopback port",
      "endpoint 10.244.0.13:8080 → its workload's loopback port",
      'cluster sagamesh (the EnvoyFilter`s): 127.0.0.1:50051 → sagamesh`s loopback port',
    ]);
  });

  test('book-trip through the translated sidecar: 201, three bookings through the outbound clusters', async () => {
    const res = await postJson(url, '/trips', trip());
    expect(res.status).toBe(201);
    const sagaId = res.headers.get('x-sagamesh-saga-id') ?? '';
    expect(sagaId).not.toBe('');
    for (const name of ['hotel', 'flight', 'car'] as const) {
      expect(stack?.participants[name].bookings()).toMatchObject([{ status: 'booked', sagaId }]);
    }
    // The mesh's access log (TEST_MESH_CONFIG) carries the saga metadata sagamesh returned:
    // metadata_options.receiving_namespaces from the EnvoyFilter lets it through.
    expect(await accessLogLine(sagaId)).toMatchObject({
      saga_id: sagaId,
      saga: 'book-trip',
      saga_outcome: 'succeeded',
      response_code: 201,
    });
    // Per-host counters from the admin's /clusters: Istio's bootstrap keeps outbound cluster stats
    // out of the stats store (its stats_matcher inclusion list), the hosts' counters are always there.
    const clusters = await (await fetch(`${sidecar?.adminUrl}/clusters`)).text();
    for (const name of ['hotel', 'flight', 'car']) {
      const count = new RegExp(
        `^outbound\\|80\\|\\|${name}\\.sagamesh-demo\\.svc\\.cluster\\.local::127\\.0\\.0\\.1:\\d+::rq_success::(\\d+)$`,
        'm',
      ).exec(clusters);
      expect({ name, count: Number(count?.[1]) }).toEqual({ name, count: 1 });
    }
  });

  test('book-trip through the translated sidecar: a rejected car compensates hotel and flight (409)', async () => {
    const res = await postJson(url, '/trips', trip({ car: { class: 'compact', fault: 'fail' } }));
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ status: 'compensated', failedStep: 'car' });
    expect(stack?.participants.hotel.bookings().map((b) => b.status)).toEqual(['cancelled']);
    expect(stack?.participants.flight.bookings().map((b) => b.status)).toEqual(['cancelled']);
  });

  test('a request that matches no saga reaches the app unchanged', async () => {
    const res = await fetch(`${url}/trips/42?view=full`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'GET', path: '/trips/42?view=full' });
  });

  test('plan-itinerary (pivot): Istio`s path handling leaves spellings some server might read as its path to sagamesh, which refuses them; owned headers never reach the app', async () => {
    const body = { guest: 'Ada', hotel: { city: 'Porto', nights: 1 }, flight: { from: 'BER', to: 'OPO' } };
    for (const p of ['/itineraries;x', '/itineraries%2F', '/itineraries%5C']) {
      const res = await postJson(url, p, body, { 'x-hotel-booking': 'FORGED' });
      expect({ path: p, status: res.status, code: res.body?.error?.code }).toEqual({
        path: p,
        status: 400,
        code: 'SAGAMESH_ERR_PATH_AMBIGUOUS',
      });
    }
    // Owned headers are stripped on a route where sagas run, saga or not: the forged one never
    // reaches the app.
    const other = await postJson(url, '/elsewhere', body, { 'x-hotel-booking': 'FORGED' });
    expect(other.status).toBe(200);
    expect(stack?.app.calls().map((c) => [c.path, c.headers['x-hotel-booking']])).toEqual([
      ['/elsewhere', undefined],
    ]);
    expect(stack?.participants.hotel.calls()).toEqual([]);
    const res = await postJson(url, '/itineraries', body);
    expect(res.status).toBe(200);
    expect(res.body.headers['x-hotel-booking']).toBe(stack?.participants.hotel.bookings()[0]?.id);
  });

  /** The sidecar's access-log line (JSON, on its stdout) that mentions `text`. */
  async function accessLogLine(text: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 100; i++) {
      const line = (sidecar?.logs() ?? '').split('\n').find((l) => l.startsWith('{') && l.includes(text));
      if (line) return JSON.parse(line) as Record<string, unknown>;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no access-log line with ${text}`);
  }

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
      status = (await postJson(url, '/trips', trip())).status;
    }
    expect(status).toBe(202);
    updateMountedConfigMap(sagasDir, data);
    for (let i = 0; i < 100 && status !== 201; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await postJson(url, '/trips', trip())).status;
    }
    expect(status).toBe(201);
  });

  test('the pod`s bootstrap override, merged by the sidecar`s Envoy, keeps the gRPC client cached as envoy/envoy.yaml does', async () => {
    const mask = 'bootstrap.grpc_async_client_manager_config';
    const dump = (await (await fetch(`${sidecar?.adminUrl}/config_dump?mask=${mask}`)).json()) as {
      configs: { bootstrap?: { grpc_async_client_manager_config?: unknown } }[];
    };
    expect(dump.configs[0]?.bootstrap?.grpc_async_client_manager_config).toEqual(
      envoyYaml.grpc_async_client_manager_config,
    );
  });

  test(`${LOAD_REQUESTS} pass-through requests through the translated sidecar: no stream reset, no GOAWAY, no retry, no 5xx`, async () => {
    const adminUrl = sidecar?.adminUrl ?? '';
    const before = await extProcCounters(adminUrl, 'sagamesh', SIDECAR_STAT_PREFIX);
    expect(before.streams_started).toBeGreaterThan(0); // the stats are there (TEST_MESH_CONFIG)
    expect(await passThrough(url, LOAD_REQUESTS, LOAD_CONCURRENCY)).toEqual({ 200: LOAD_REQUESTS });
    const after = await extProcCounters(adminUrl, 'sagamesh', SIDECAR_STAT_PREFIX);
    expect(after).toEqual({
      tx_reset: 0,
      goaway: 0,
      retries: 0,
      streams_started: (before.streams_started ?? 0) + LOAD_REQUESTS,
      streams_failed: 0,
    });
  });

  test('control: the same runtime value written as the string "true" (no istio-agent conversion) resets every stream', async () => {
    // What a bootstrap gets when "true" is passed through verbatim (Istio before 1.19, or a
    // hand-written static layer): Envoy 1.40 reads no boolean from the string. Proves the check
    // above can fail.
    const requests = 200;
    const other = {
      ...ports,
      inbound: await freePort(),
      outbound80: await freePort(),
      admin: await freePort(),
    };
    const { bootstrap: controlBootstrap } = sidecarRunConfig(xds, other);
    const layers = field(field(controlBootstrap, 'layered_runtime') as Json, 'layers') as Json[];
    const global = field(layers[0] ?? {}, 'static_layer') as Json;
    for (const key of Object.keys(ENVOY_YAML_RUNTIME ?? {})) global[key] = 'true';
    const yaml = YAML.stringify(controlBootstrap, { lineWidth: 0 });
    const envoy = await startEnvoy({ configYaml: yaml, adminPort: other.admin });
    try {
      expect(await passThrough(`http://127.0.0.1:${other.inbound}`, requests, 8)).toEqual({ 200: requests });
      const c = await extProcCounters(envoy.adminUrl, 'sagamesh', SIDECAR_STAT_PREFIX);
      expect({ started: c.streams_started, resets: c.tx_reset }).toEqual({
        started: requests,
        resets: requests,
      });
    } finally {
      await envoy.stop();
    }
  });

  // Last: it stops sagamesh.
  test('fail closed: with sagamesh gone the sidecar answers the EnvoyFilter`s coded 503 (istiod merged its local_reply_config)', async () => {
    await stack?.sagamesh.stop();
    const res = await postJson(url, '/trips', trip());
    expect({
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      code: res.body?.error?.code,
    }).toEqual({ status: 503, retryAfter: '1', code: ERRORS.COORDINATOR_UNAVAILABLE.code });
    expect(stack?.app.calls()).toHaveLength(0);
  });
});
