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
import { container, envOf, mountConfigMap, only, render } from '../helpers/k8s';
import type { GatewayXds } from '../helpers/egctl-gateway';
import { egctlInput, egctlTranslate, gatewayRunConfig } from '../helpers/egctl-gateway';
import type { Json } from '../helpers/xds-static';
import { connectionManagers, field } from '../helpers/xds-static';
import type { SidecarPorts, SidecarXds } from '../helpers/istio-sidecar';
import { istioTranslate, sidecarRunConfig } from '../helpers/istio-sidecar';
import type { ClusterState } from '../helpers/cluster-state';
import { clusterState } from '../helpers/cluster-state';
import { postJson, trip } from '../helpers/trip-client';

jest.setTimeout(120_000);

const envoyYaml = YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as {
  layered_runtime: { layers: { static_layer: Record<string, unknown> }[] };
  grpc_async_client_manager_config: Record<string, unknown>;
};
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
    const yaml = YAML.stringify(bootstrap, { lineWidth: 0 });
    const { ok, output } = await validateEnvoyConfig(yaml);
    if (!ok) throw new Error(`envoy --mode validate rejected egctl's config:\n${output.slice(0, 4000)}`);
    gateway = await startEnvoy({ configYaml: yaml, adminPort: ports.admin });
    url = `http://127.0.0.1:${ports.listener}`;
  });

  afterAll(async () => {
    await gateway?.stop();
    await stack?.stop();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    if (!stack) return;
    for (const p of Object.values(stack.participants)) p.reset();
    stack.app.reset();
  });

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

  beforeAll(async () => {
    objects = render('base').objects;
    state = clusterState(objects, ['trips']);
    xds = istioTranslate(state.objects, POD);

    const trips = only(objects, 'Deployment', 'trips');
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-istio-translation-'));
    const sagasDir = path.join(workDir, 'sagas');
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
    const yaml = YAML.stringify(bootstrap, { lineWidth: 0 });
    const { ok, output } = await validateEnvoyConfig(yaml, override);
    if (!ok) throw new Error(`envoy --mode validate rejected Istio's config:\n${output.slice(0, 4000)}`);
    sidecar = await startEnvoy({
      configYaml: yaml,
      adminPort: ports.admin,
      ...(override ? { configOverride: override } : {}),
    });
    url = `http://127.0.0.1:${ports.inbound}`;
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
});
