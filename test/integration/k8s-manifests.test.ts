/**
 * deploy/kubernetes, rendered by the real kustomize and checked by kubectl-validate against the
 * Kubernetes schemas and the Istio / Envoy Gateway / Gateway API CRDs; then the cross-object
 * contracts no schema can see: the EnvoyFilter carries envoy/envoy.yaml's cluster and ext_proc
 * filter, the sagamesh container listens where they point, the probes, metrics and policies agree
 * on the admin port, the timeouts nest, the sagas ConfigMap is sagas/ and loads.
 * The Envoy side is run for real, through Istio's and Envoy Gateway's own translators, in
 * istio-translation.test.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { ENVOY_CONFIG_PATH } from '../../demo/envoy';
import { DEFAULTS } from '../../src/config/config';
import { parseStoreUrl } from '../../src/config/store-url';
import { loadDefinitions } from '../../src/definition/loader';
import type { K8sObject, Rendered } from '../helpers/k8s';
import {
  ROOT,
  container,
  envOf,
  mountConfigMap,
  only,
  podTemplate,
  render,
  specOf,
  validateObjects,
} from '../helpers/k8s';

jest.setTimeout(120_000);

const SAGAS_DIR = path.join(ROOT, 'sagas');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'index.js');
const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

interface ExtProcFilter {
  name: string;
  typed_config: {
    grpc_service: {
      retry_policy?: {
        retry_on: string;
        num_retries: number;
        retry_back_off?: { base_interval: string; max_interval: string };
      };
    };
    failure_mode_allow: boolean;
    status_on_error?: { code: number };
    message_timeout: string;
    allow_mode_override: boolean;
    processing_mode: Record<string, string>;
    metadata_options: { receiving_namespaces: { untyped: string[] } };
  };
}
interface SocketAddress {
  address: string;
  port_value: number;
}
interface EnvoyCluster {
  name: string;
  circuit_breakers?: { thresholds: Record<string, unknown>[] };
  load_assignment: {
    endpoints: { lb_endpoints: { endpoint: { address: { socket_address: SocketAddress } } }[] }[];
  };
}
interface EnvoyBootstrap {
  static_resources: {
    clusters: EnvoyCluster[];
    listeners: {
      name: string;
      filter_chains: {
        filters: { typed_config: { http_filters: ExtProcFilter[]; local_reply_config?: unknown } }[];
      }[];
    }[];
  };
}

const envoyYaml = YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as EnvoyBootstrap;
const envoyCluster = envoyYaml.static_resources.clusters.find((c) => c.name === 'sagamesh') as EnvoyCluster;
const envoyIngressHcm = envoyYaml.static_resources.listeners.find((l) => l.name === 'ingress')
  ?.filter_chains[0]?.filters[0]?.typed_config;
const envoyExtProc = envoyIngressHcm?.http_filters.find(
  (f) => f.name === 'envoy.filters.http.ext_proc',
) as ExtProcFilter;
const envoyEndpoint: SocketAddress = envoyCluster.load_assignment.endpoints.flatMap((l) => l.lb_endpoints)[0]
  ?.endpoint.address.socket_address ?? { address: '', port_value: 0 };

interface ConfigPatch {
  applyTo: string;
  match: { context: string; listener?: { filterChain: { filter: { subFilter: { name: string } } } } };
  patch: { operation: string; value: unknown };
}
interface EnvoyFilterSpec {
  workloadSelector: { labels: Record<string, string> };
  configPatches: ConfigPatch[];
}
interface AuthorizationPolicySpec {
  selector: { matchLabels: Record<string, string> };
  action: string;
  rules: unknown[];
}
interface ServiceSpec {
  ports: { name?: string; port: number; targetPort?: string | number; appProtocol?: string }[];
}
interface ExtProcSpec {
  targetRefs: { group: string; kind: string; name: string }[];
  extProc: {
    backendRefs: { name: string; port: number }[];
    backendSettings?: {
      retry?: { numRetries?: number; perRetry?: unknown; retryOn?: { triggers?: string[] } };
      circuitBreaker?: Record<string, number>;
    };
    failOpen: boolean;
    statusOnError?: number;
    messageTimeout: string;
    processingMode: unknown;
    metadata: { writableNamespaces: string[] };
  }[];
}
interface NetworkPolicySpec {
  ingress: { from?: unknown[]; ports: { protocol: string; port: number }[] }[];
}

const seconds = (d: string): number => {
  const m = /^(\d+(?:\.\d+)?)s$/.exec(d);
  if (!m) throw new Error(`not a duration in seconds: ${d}`);
  return Number(m[1]);
};

/** host:port → port */
const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

const sagaFiles = fs
  .readdirSync(SAGAS_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

let base: Rendered;
let gateway: Rendered;
let sqliteSinglePod: Rendered;

beforeAll(() => {
  base = render('base');
  gateway = render('overlays/envoy-gateway');
  sqliteSinglePod = render('overlays/sqlite-single-pod');
});

describe('the manifests render and pass the schemas', () => {
  test.each([
    ['base', () => base],
    ['overlays/envoy-gateway', () => gateway],
    ['overlays/sqlite-single-pod', () => sqliteSinglePod],
  ])('%s: kustomize build, then kubectl-validate (Kubernetes + CRD schemas)', (_dir, get) => {
    const { ok, output } = validateObjects(get().yaml);
    if (!ok) throw new Error(`kubectl-validate rejected the rendered manifests:\n${output}`);
    expect(output).toContain('OK');
  });

  test('every object lands in the demo namespace', () => {
    for (const o of [...base.objects, ...gateway.objects, ...sqliteSinglePod.objects]) {
      if (o.kind === 'Namespace') expect(o.metadata.name).toBe('sagamesh-demo');
      else expect({ kind: o.kind, ns: o.metadata.namespace }).toEqual({ kind: o.kind, ns: 'sagamesh-demo' });
    }
  });

  test('kubectl-validate rejects a broken EnvoyFilter (the CRD schemas are really in use)', () => {
    const broken = base.yaml.replace('applyTo: CLUSTER\n', 'applyTo: CLUSTERS\n');
    expect(broken).not.toBe(base.yaml);
    const { ok, output } = validateObjects(broken);
    expect(ok).toBe(false);
    expect(output).toMatch(/EnvoyFilter.*applyTo: Unsupported value: "CLUSTERS"/);
  });
});

describe('the sagas ConfigMap', () => {
  test('holds exactly the files of sagas/, byte for byte', () => {
    for (const rendered of [base, gateway]) {
      const data = only(rendered.objects, 'ConfigMap', 'sagamesh-sagas').data ?? {};
      expect(Object.keys(data).sort()).toEqual(sagaFiles);
      for (const file of sagaFiles)
        expect(data[file]).toBe(fs.readFileSync(path.join(SAGAS_DIR, file), 'utf8'));
    }
  });

  test('mounted the way the kubelet mounts it, loads with the server loader and passes `sagamesh validate`', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-configmap-'));
    try {
      mountConfigMap(only(base.objects, 'ConfigMap', 'sagamesh-sagas'), dir);
      const definitions = await loadDefinitions(dir);
      expect(definitions.map((d) => d.name).sort()).toEqual(['book-trip', 'plan-itinerary']);
      if (!fs.existsSync(CLI)) throw new Error(`${CLI} missing: the integration global setup builds dist/`);
      const out = execFileSync(process.execPath, [CLI, 'validate', dir], { encoding: 'utf8' });
      expect(out).toMatch(/ok .*book-trip/);
      expect(out).toMatch(/ok .*plan-itinerary/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('base: sagamesh attached to the trips pod in an Istio mesh', () => {
  const trips = (): K8sObject => only(base.objects, 'Deployment', 'trips');
  const sagamesh = () => container(trips(), 'sagamesh');
  const env = () => envOf(sagamesh());
  const envoyFilter = () => specOf<EnvoyFilterSpec>(only(base.objects, 'EnvoyFilter', 'sagamesh'));
  const pod = () => podTemplate(trips());
  const patch = (applyTo: string): ConfigPatch => {
    const found = envoyFilter().configPatches.filter((p) => p.applyTo === applyTo);
    expect(found).toHaveLength(1);
    if (!found[0]) throw new Error(`no ${applyTo} patch`);
    return found[0];
  };

  test('the EnvoyFilter adds envoy/envoy.yaml`s `sagamesh` cluster and ext_proc filter, unchanged', () => {
    expect(envoyCluster).toBeDefined();
    expect(envoyExtProc).toBeDefined();
    expect(patch('CLUSTER').patch).toEqual({ operation: 'ADD', value: envoyCluster });
    expect(patch('CLUSTER').match.context).toBe('SIDECAR_OUTBOUND');
    const filter = patch('HTTP_FILTER');
    expect(filter.match.context).toBe('SIDECAR_INBOUND');
    expect(filter.match.listener?.filterChain.filter.subFilter.name).toBe('envoy.filters.http.router');
    expect(filter.patch).toEqual({ operation: 'INSERT_BEFORE', value: envoyExtProc });
    // envoy/envoy.yaml's coded answer for a failed ext_proc stream, merged into the inbound HCM.
    const hcm = patch('NETWORK_FILTER');
    expect(envoyIngressHcm?.local_reply_config).toBeDefined();
    expect(hcm.match).toEqual({
      context: 'SIDECAR_INBOUND',
      listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } },
    });
    expect(hcm.patch).toEqual({
      operation: 'MERGE',
      value: {
        typed_config: {
          '@type':
            'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          local_reply_config: envoyIngressHcm?.local_reply_config,
        },
      },
    });
  });

  test('the EnvoyFilter and the AuthorizationPolicy select exactly the pods that got sagamesh', () => {
    const selector = envoyFilter().workloadSelector.labels;
    expect(pod().metadata.labels).toMatchObject(selector);
    const policy = specOf<AuthorizationPolicySpec>(
      only(base.objects, 'AuthorizationPolicy', 'sagamesh-admin'),
    );
    expect(policy.selector.matchLabels).toEqual(selector);
    // No other pod carries the label.
    const others = base.objects.filter((o) => o.kind === 'Deployment' && o.metadata.name !== 'trips');
    expect(others.length).toBeGreaterThan(0);
    for (const d of others) expect(podTemplate(d).metadata.labels).not.toMatchObject(selector);
  });

  test('sagamesh listens on the pod loopback where the EnvoyFilter cluster points', () => {
    expect(env()['SAGAMESH_GRPC_ADDR']).toBe(`${envoyEndpoint.address}:${envoyEndpoint.port_value}`);
    expect(envoyEndpoint.address).toBe('127.0.0.1');
    // The gRPC port is not declared: nothing outside the pod may reach it.
    const ports = sagamesh().ports ?? [];
    expect(ports.map((p) => p.containerPort)).not.toContain(envoyEndpoint.port_value);
  });

  test('probes, Prometheus annotations and the AuthorizationPolicy agree on the admin port', () => {
    const adminPort = portOf(env()['SAGAMESH_ADMIN_ADDR'] ?? '');
    const c = sagamesh();
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: adminPort });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: adminPort });
    expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: adminPort });
    expect(c.ports).toContainEqual({ name: 'sagamesh-admin', containerPort: adminPort });
    expect(pod().metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(adminPort),
      'prometheus.io/path': '/metrics',
    });
    const policy = only(base.objects, 'AuthorizationPolicy', 'sagamesh-admin');
    expect(policy.spec).toMatchObject({
      action: 'DENY',
      rules: [{ to: [{ operation: { ports: [String(adminPort)] } }] }],
    });
    // Probes from the kubelet (or Istio's agent) arrive on the pod IP, not on loopback.
    expect(env()['SAGAMESH_ADMIN_ADDR']).toMatch(/^0\.0\.0\.0:/);
  });

  test('the sagas ConfigMap is mounted as a directory at SAGAMESH_SAGAS_DIR', () => {
    const volume = pod().spec.volumes?.find((v) => v.configMap?.name === 'sagamesh-sagas');
    expect(volume).toBeDefined();
    const mount = sagamesh().volumeMounts?.find((m) => m.name === volume?.name);
    expect(mount).toMatchObject({ mountPath: env()['SAGAMESH_SAGAS_DIR'], readOnly: true });
    expect(mount?.subPath).toBeUndefined(); // subPath mounts never see ConfigMap updates
  });

  test("the saga log is the sidecar component's own 3-member etcd, every member in SAGAMESH_STORE", () => {
    const store = parseStoreUrl(env()['SAGAMESH_STORE'] ?? '', ROOT);
    if (!('kind' in store) || store.kind !== 'etcd')
      throw new Error(`not an etcd store: ${JSON.stringify(store)}`);
    const etcd = only(base.objects, 'StatefulSet', 'sagamesh-etcd');
    const spec = specOf<{ replicas: number; serviceName: string; podManagementPolicy: string }>(etcd);
    expect(spec.replicas).toBe(3);
    expect(spec.podManagementPolicy).toBe('Parallel');
    const service = only(base.objects, 'Service', spec.serviceName);
    expect(specOf<{ clusterIP: string; publishNotReadyAddresses: boolean }>(service)).toMatchObject({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
    });
    const members = Array.from(
      { length: spec.replicas },
      (_, i) => `${etcd.metadata.name}-${i}.${spec.serviceName}:2379`,
    );
    expect(store.endpoints).toEqual(members);
    // The members know each other by the same names.
    const args = (podTemplate(etcd).spec.containers[0]?.command ?? []).join(' ');
    for (const m of members) expect(args).toContain(`${m.split(':')[0]}:2380`);
    expect(
      specOf<{ minAvailable: number }>(only(base.objects, 'PodDisruptionBudget', 'sagamesh-etcd'))
        .minAvailable,
    ).toBe(2);
    // Nothing of the saga log is on the pod's own disk any more.
    expect(sagamesh().volumeMounts?.map((m) => m.mountPath)).not.toContain('/var/lib/sagamesh');
  });

  test('sqlite-single-pod: the SQLite saga log on an emptyDir the read-only container can write, one replica, no etcd', () => {
    const trips = only(sqliteSinglePod.objects, 'Deployment', 'trips');
    const c = container(trips, 'sagamesh');
    const store = envOf(c)['SAGAMESH_STORE'] ?? '';
    expect(store).toMatch(/^sqlite:\//);
    const file = store.slice('sqlite:'.length);
    const mount = c.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
    expect(podTemplate(trips).spec.volumes?.find((v) => v.name === mount?.name)?.emptyDir).toBeDefined();
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
    expect(specOf<{ replicas: number }>(trips).replicas).toBe(1);
    expect(sqliteSinglePod.objects.filter((o) => o.metadata.name === 'sagamesh-etcd')).toEqual([]);
  });

  test('timeouts nest: saga deadline < answer budget < message_timeout; shutdown grace < sidecar drain < pod grace', () => {
    const messageTimeoutS = seconds(envoyExtProc.typed_config.message_timeout);
    const maxDeadlineMs = Number(env()['SAGAMESH_MAX_DEADLINE_MS'] ?? DEFAULTS.maxDeadlineMs);
    const answerBudgetMs = Number(env()['SAGAMESH_ANSWER_BUDGET_MS'] ?? DEFAULTS.answerBudgetMs);
    expect(maxDeadlineMs).toBeLessThan(answerBudgetMs);
    expect(answerBudgetMs).toBeLessThan(messageTimeoutS * 1000);

    const proxyConfig = YAML.parse(pod().metadata.annotations?.['proxy.istio.io/config'] ?? '') as {
      holdApplicationUntilProxyStarts: boolean;
      terminationDrainDuration: string;
    };
    expect(proxyConfig.holdApplicationUntilProxyStarts).toBe(true);
    const graceMs = Number(env()['SAGAMESH_SHUTDOWN_GRACE_MS']);
    const drainS = seconds(proxyConfig.terminationDrainDuration);
    expect(graceMs).toBeGreaterThanOrEqual(answerBudgetMs); // an open saga can still answer
    expect(graceMs).toBeLessThan(drainS * 1000); // its step calls still have a sidecar
    expect(drainS).toBeLessThan(pod().spec.terminationGracePeriodSeconds ?? 30);
  });

  test('step calls: the egress URL and every saga host are port-80 HTTP Services without mesh retries', async () => {
    const egress = new URL(env()['SAGAMESH_EGRESS_URL'] ?? '');
    const services = base.objects.filter((o) => o.kind === 'Service');
    const port80 = (name: string) => {
      const service = services.find((s) => s.metadata.name === name);
      return service ? specOf<ServiceSpec>(service).ports.find((p) => p.port === 80) : undefined;
    };
    expect(egress.protocol).toBe('http:');
    expect(egress.port).toBe('');
    expect(port80(egress.hostname)).toMatchObject({ name: 'http' });

    const hosts = new Set<string>();
    for (const d of await loadDefinitions(SAGAS_DIR)) {
      for (const step of d.steps) {
        for (const call of [step.action, step.compensation])
          if (call) hosts.add(new URL(call.request.url.origin).host);
      }
    }
    expect([...hosts].sort()).toEqual(['car', 'flight', 'hotel']);
    for (const host of hosts) {
      expect(port80(host)).toMatchObject({ name: 'http' });
      const vs = only(base.objects, 'VirtualService', host);
      expect(vs.spec).toMatchObject({ hosts: [host], http: [{ retries: { attempts: 0 } }] });
    }
  });

  test('the container runs the image built by the Dockerfile, as its non-root user', () => {
    expect(sagamesh().image).toBe(`sagamesh:${PACKAGE.version}`);
    expect(sagamesh().command).toBeUndefined(); // the image's CMD: node dist/src/main.js
    expect(sagamesh().securityContext?.['runAsUser']).toBe(1000); // `node` in node:*-bookworm-slim
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/src\/main\.js"\]$/m);
  });
});

describe('overlays/envoy-gateway: sagas at the edge', () => {
  const policy = () => specOf<ExtProcSpec>(only(gateway.objects, 'EnvoyExtensionPolicy', 'sagamesh'));

  test('no sidecar attachment: no EnvoyFilter, no sagamesh container in the trips pod', () => {
    expect(gateway.objects.filter((o) => o.kind === 'EnvoyFilter')).toEqual([]);
    const names = podTemplate(only(gateway.objects, 'Deployment', 'trips')).spec.containers.map(
      (c) => c.name,
    );
    expect(names).toEqual(['trips']);
  });

  test('the policy targets the trips HTTPRoute and calls the sagamesh Service where sagamesh listens', () => {
    expect(policy().targetRefs).toEqual([
      { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'trips' },
    ]);
    const route = only(gateway.objects, 'HTTPRoute', 'trips');
    expect(route.spec).toMatchObject({ rules: [{ backendRefs: [{ name: 'trips', port: 80 }] }] });
    expect(policy().extProc[0]?.backendRefs).toEqual([{ name: 'sagamesh', port: 50051 }]);
    const service = specOf<ServiceSpec>(only(gateway.objects, 'Service', 'sagamesh'));
    expect(service.ports.find((p) => p.port === 50051)).toMatchObject({
      appProtocol: 'kubernetes.io/h2c',
      targetPort: 'grpc',
    });
    const c = container(only(gateway.objects, 'Deployment', 'sagamesh'), 'sagamesh');
    expect(c.ports).toContainEqual({
      name: 'grpc',
      containerPort: portOf(envOf(c)['SAGAMESH_GRPC_ADDR'] ?? ''),
    });
    expect(envOf(c)['SAGAMESH_GRPC_ADDR']).toMatch(/^0\.0\.0\.0:/);
  });

  test('the policy carries envoy/envoy.yaml`s ext_proc settings in Envoy Gateway terms', () => {
    const ext = policy().extProc[0];
    const ours = envoyExtProc.typed_config;
    if (!ext) throw new Error('no extProc in the EnvoyExtensionPolicy');
    expect(ext.failOpen).toBe(ours.failure_mode_allow);
    expect(ext.statusOnError).toBe(ours.status_on_error?.code);
    expect(ext.messageTimeout).toBe(ours.message_timeout);
    expect(ours.processing_mode).toMatchObject({
      request_body_mode: 'BUFFERED',
      response_header_mode: 'SEND',
    });
    expect(ext.processingMode).toEqual({
      request: { body: 'Buffered' },
      response: {},
      allowModeOverride: ours.allow_mode_override,
    });
    expect(ext.metadata.writableNamespaces).toEqual(ours.metadata_options.receiving_namespaces.untyped);
  });

  test('the ext_proc backend is retried like envoy/envoy.yaml`s grpc_service: refused streams and failed connections only', () => {
    const ours = envoyExtProc.typed_config.grpc_service.retry_policy;
    expect(ours?.retry_back_off).toBeDefined();
    expect(policy().extProc[0]?.backendSettings?.retry).toEqual({
      numRetries: ours?.num_retries,
      perRetry: {
        backOff: {
          baseInterval: ours?.retry_back_off?.base_interval,
          maxInterval: ours?.retry_back_off?.max_interval,
        },
      },
      retryOn: { triggers: ours?.retry_on.split(',') },
    });
  });

  test('the ext_proc backend has envoy/envoy.yaml`s circuit breakers (the gateway`s defaults are 1024)', () => {
    const thresholds = envoyCluster.circuit_breakers?.thresholds ?? [];
    const byPriority = (p: string) => {
      const t = thresholds.find((x) => x['priority'] === p);
      if (!t) throw new Error(`envoy/envoy.yaml's sagamesh cluster has no ${p} threshold`);
      return t;
    };
    const ours = byPriority('DEFAULT');
    // Envoy Gateway generates only a DEFAULT threshold: envoy.yaml's HIGH one (unused by ext_proc
    // streams, which are DEFAULT-priority) has the same numbers, so nothing is lost.
    expect(byPriority('HIGH')).toEqual({ ...ours, priority: 'HIGH' });
    expect(Object.keys(ours).sort()).toEqual([
      'max_connections',
      'max_pending_requests',
      'max_requests',
      'max_retries',
      'priority',
    ]);
    expect(policy().extProc[0]?.backendSettings?.circuitBreaker).toEqual({
      maxConnections: ours['max_connections'],
      maxPendingRequests: ours['max_pending_requests'],
      maxParallelRequests: ours['max_requests'],
      maxParallelRetries: ours['max_retries'],
    });
  });

  test('the Gateway runs with the overlay`s EnvoyProxy (its bootstrap carries the ext_proc runtime flag)', () => {
    const gw = specOf<{ infrastructure?: { parametersRef?: unknown } }>(
      only(gateway.objects, 'Gateway', 'sagamesh-edge'),
    );
    const envoyProxy = only(gateway.objects, 'EnvoyProxy', 'sagamesh-edge');
    expect(gw.infrastructure?.parametersRef).toEqual({
      group: 'gateway.envoyproxy.io',
      kind: 'EnvoyProxy',
      name: envoyProxy.metadata.name,
    });
    // What the layer holds is run and checked in istio-translation.test.ts.
    expect(envoyProxy.spec).toMatchObject({ bootstrap: { type: 'Merge' } });
  });

  test('kubectl-validate checks the EnvoyProxy and the policy`s retry and circuit breaker too', () => {
    for (const [from, to, error] of [
      [
        'maxParallelRequests: 100000\n',
        'maxParallelRequests: 4294967296\n',
        /EnvoyExtensionPolicy.*circuitBreaker.maxParallelRequests/,
      ],
      ['type: Merge\n', 'type: Merged\n', /EnvoyProxy.*bootstrap.type: Unsupported value: "Merged"/],
      ['- refused-stream\n', '- refused-streams\n', /EnvoyExtensionPolicy.*triggers\[0\]: Unsupported value/],
    ] as const) {
      const broken = gateway.yaml.replace(from, to);
      expect(broken).not.toBe(gateway.yaml);
      const { ok, output } = validateObjects(broken);
      expect(ok).toBe(false);
      expect(output).toMatch(error);
    }
  });

  test('only the gateway may open ext_proc streams (NetworkPolicy on the gRPC port)', () => {
    const np = specOf<NetworkPolicySpec>(only(gateway.objects, 'NetworkPolicy', 'sagamesh'));
    expect(np.ingress[0]).toEqual({
      from: [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'envoy-gateway-system' } } },
      ],
      ports: [{ protocol: 'TCP', port: 50051 }],
    });
    const open = np.ingress.flatMap((r) => r.ports.map((p) => p.port));
    expect(open).not.toContain(9090);
  });
});

describe('the image', () => {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

  test('multi-stage, production dependencies only, non-root', () => {
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/node_modules node_modules$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
  });

  test('its HEALTHCHECK command passes against a live /healthz and fails without one', async () => {
    const line = /^HEALTHCHECK .* CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(line).toBeDefined();
    const [cmd, ...args] = JSON.parse(line ?? '[]') as string[];
    expect(cmd).toBe('node');
    const server = http.createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    // Asynchronous: the server answering the check runs in this process.
    const run = (addr: string) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, args, {
          env: { ...process.env, SAGAMESH_ADMIN_ADDR: addr },
          stdio: 'ignore',
        });
        child.on('exit', (code) => resolve(code));
      });
    try {
      expect(await run(`0.0.0.0:${port}`)).toBe(0); // a wildcard bind is asked on loopback
      expect(await run(`127.0.0.1:${port}`)).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await run(`127.0.0.1:${port}`)).toBe(1);
  });

  test('.dockerignore keeps machine-local directories out of the build context', () => {
    const ignored = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const dir of ['node_modules', '.venv', '.tools', 'dist', '.git']) expect(ignored).toContain(dir);
  });
});
